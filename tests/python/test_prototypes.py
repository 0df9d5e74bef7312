"""The ctypes prototypes of the package match the public headers.

Every C function the package calls must be declared in aiplat._lib with
the header's number of parameters, pointers where the header has pointers,
and integer and floating types of the header's sizes: a missing
``restype`` would truncate returned pointers to an int.
"""

import ctypes
import glob
import os
import re
import unittest

import support
from aiplat import _lib

PKG = os.path.dirname(_lib.__file__)
DECL = re.compile(r"AIPLAT_API\s+([^;]*?)\b(aiplat_\w+)\s*\(([^;]*?)\)\s*;", re.S)
SCALARS = {
    "size_t": ctypes.c_size_t, "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
    "int32_t": ctypes.c_int32, "uint32_t": ctypes.c_uint32, "int": ctypes.c_int,
    "unsigned": ctypes.c_uint, "bool": ctypes.c_bool, "double": ctypes.c_double,
    "float": ctypes.c_float,
}


def parse_headers():
    out = {}
    for path in glob.glob(os.path.join(support.SRC, "include", "aiplat", "*.h")):
        with open(path) as f:
            text = re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)
        for ret, name, params in DECL.findall(text):
            params = " ".join(params.split())
            plist = [] if params in ("", "void") else [p.strip() for p in params.split(",")]
            out[name] = (" ".join(ret.split()), plist)
    return out


def c_kind(decl, is_return=False):
    """('ptr', None), ('void', None) or ('scalar', ctypes type)."""
    if "*" in decl or re.search(r"\baiplat_\w+_fn\b", decl):
        return ("ptr", None)
    words = decl.replace("const", "").split()
    if not is_return:
        words = words[:-1]  # drop the parameter name
    base = " ".join(words)
    if base == "void":
        return ("void", None)
    if base in SCALARS:
        return ("scalar", SCALARS[base])
    if base.startswith("aiplat_"):  # an enum
        return ("scalar", ctypes.c_int)
    raise AssertionError("unknown C type %r" % decl)


def py_kind(t):
    if t is None:
        return ("void", None)
    if t in (ctypes.c_void_p, ctypes.c_char_p) or issubclass(
            t, (ctypes._Pointer, ctypes._CFuncPtr)):
        return ("ptr", None)
    return ("scalar", t)


def same(a, b):
    if a[0] != b[0]:
        return False
    if a[0] != "scalar":
        return True
    fa = a[1] in (ctypes.c_double, ctypes.c_float)
    fb = b[1] in (ctypes.c_double, ctypes.c_float)
    return ctypes.sizeof(a[1]) == ctypes.sizeof(b[1]) and fa == fb and \
        (a[1] is ctypes.c_bool) == (b[1] is ctypes.c_bool)


class TestPrototypes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.headers = parse_headers()

    def test_headers_parsed(self):
        # The parser must see the API, or every other check passes vacuously.
        self.assertIn("aiplat_bus_request", self.headers)
        self.assertGreater(len(self.headers), 250)
        self.assertEqual(len(self.headers["aiplat_bus_request"][1]), 7)

    def test_every_prototype_matches_its_header(self):
        problems = []
        for name, (restype, argtypes) in _lib.PROTOTYPES.items():
            if name not in self.headers:
                if name not in _lib.OPTIONAL:  # optional: checked once its header lands
                    problems.append("%s: not in the public headers" % name)
                continue
            ret, params = self.headers[name]
            if not same(c_kind(ret, True), py_kind(restype)):
                problems.append("%s: restype %r for C %r" % (name, restype, ret))
            if len(params) != len(argtypes):
                problems.append("%s: %d argtypes for %d parameters"
                                % (name, len(argtypes), len(params)))
                continue
            for i, (p, t) in enumerate(zip(params, argtypes)):
                if not same(c_kind(p), py_kind(t)):
                    problems.append("%s: parameter %d %r declared %r" % (name, i, p, t))
        self.assertEqual(problems, [])

    def test_package_calls_only_declared_functions(self):
        called = set()
        for path in glob.glob(os.path.join(PKG, "*.py")):
            with open(path) as f:
                called |= set(re.findall(r"\blib\.(aiplat_\w+)", f.read()))
        # _Client builds names from a prefix and a verb.
        for prefix in ("aiplat_llm", "aiplat_embeddings", "aiplat_reranker", "aiplat_stt",
                       "aiplat_tts"):
            for verb in ("create", "destroy", "last_error", "health", "cancel", "set_url",
                         "set_model", "set_api_key", "set_timeout_ms",
                         "set_connect_timeout_ms", "set_max_retries"):
                called.add("%s_%s" % (prefix, verb))
        self.assertGreater(len(called), 150)
        self.assertEqual(sorted(called - set(_lib.PROTOTYPES)), [])

    def test_undeclared_function_is_not_reachable(self):
        with self.assertRaises(AttributeError):
            _lib.lib.aiplat_metrics_render  # in the library, not declared here

    def test_library_candidates(self):
        self.assertEqual(_lib.candidates({"AIPLAT_LIBRARY": "/x/libaiplat.so.0",
                                          "AIPLAT_BUILD_DIR": "/b"}), ["/x/libaiplat.so.0"])
        tail = _lib.candidates({"AIPLAT_BUILD_DIR": "/b"})[-1]
        self.assertEqual(tail, "/b/lib/.libs/libaiplat.so.0")
        with self.assertRaises(_lib.LibraryNotFound) as cm:
            _lib.load({"AIPLAT_LIBRARY": "/nonexistent/libaiplat.so.0"})
        self.assertIn("AIPLAT_LIBRARY", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
