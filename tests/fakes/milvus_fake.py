#!/usr/bin/env python3
"""A test stand-in for Milvus's RESTful API v2 (python3 standard library).

Milvus cannot run on a test machine, so the Milvus backend of libaiplat is
tested against this server. It speaks the wire format of Milvus 2.4/2.5's
/v2/vectordb endpoints as their proxy sends it
(internal/distributed/proxy/httpserver in milvus-io/milvus):

- every answer is HTTP 200 with {"code": 0, "data": ...}, and failures are
  a non-zero "code" with a "message" inside HTTP 200, worded as Milvus words
  them (merr codes: 100 collection not found, 101 not loaded, 800 database
  not found, 1100 invalid parameter, 1801 not JSON (also a search vector of
  the wrong dimension), 1802 missing parameter, 1804 bad insert data (also
  a row vector of the wrong dimension), 65535 from the query nodes, ...);
- a bad or missing token with authentication on is HTTP 401 with
  {"code": 1800, "message": "user hasn't authenticated"};
- an unknown route is gin's plain-text "404 page not found".

Collections hold real entities: insert appends (a repeated primary key makes
a second entity, as in Milvus), upsert replaces by primary key, search is an
exact cosine scan with filters (==, !=, in, not in, like, and/or/not over
scalar fields, Milvus's string-literal escapes), query returns rows or
count(*), delete removes by filter.

Test control, outside /v2 (POST JSON to /fake/control):
  {"reset": true}                       forget everything
  {"token": "root:Milvus"} / null       require this bearer token
  {"style": {...}}                      answer like another version:
       success_code 0|200, search_shape "flat"|"nested", score_key
       "distance"|"score", describe "params"|"typename", topks true|false
  {"fault": {"path": "/v2/vectordb/entities/search" | "*", "count": 1,
             "kind": "http500"|"http503"|"http401"|"garbage"|"empty"|"slow"|
                     "code"|"nocode"|"close"|"badshape",
             "delay_ms": 500, "code": 8, "message": "..."}}
  {"create_db": "name"}                 a database besides "default"
  {"release": "coll"}                   release a collection (not loaded)
GET /fake/state: collections (fields, rows, index, loaded) and request
counts per path.

Usage: milvus_fake.py --port-file FILE [--port 0] [--token T]
"""

import argparse
import json
import math
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/v2/vectordb"
QUERY_WINDOW = 16384
TYPES = {
    "Bool", "Int8", "Int16", "Int32", "Int64", "Float", "Double", "VarChar",
    "JSON", "Array", "FloatVector", "BinaryVector", "Float16Vector",
    "BFloat16Vector", "SparseFloatVector",
}
METRICS = {"COSINE", "L2", "IP"}


class MilvusError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(msg, expected=None, actual=None):
    if expected is None:
        return MilvusError(1100, msg + ": invalid parameter")
    return MilvusError(
        1100, "%s: invalid parameter[expected=%s][actual=%s]" % (msg, expected, actual))


# ---- filter expressions ---------------------------------------------------

class ParseError(Exception):
    pass


SIMPLE_ESC = {'"': '"', "'": "'", "\\": "\\", "?": "?", "a": "\a", "b": "\b",
              "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def unquote(body):
    """The value of a string literal's inside, with Milvus's escapes."""
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise ParseError("dangling backslash")
        c = body[i]
        if c in SIMPLE_ESC:
            out.append(SIMPLE_ESC[c])
            i += 1
        elif c in "uU":
            n = 4 if c == "u" else 8
            h = body[i + 1:i + 1 + n]
            if len(h) != n or not re.fullmatch(r"[0-9a-fA-F]+", h):
                raise ParseError("bad \\%s escape" % c)
            out.append(chr(int(h, 16)))
            i += 1 + n
        elif c == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 1:])
            if not m:
                raise ParseError("bad \\x escape")
            out.append(chr(int(m.group(0), 16)))
            i += 1 + len(m.group(0))
        elif c in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i:])
            out.append(chr(int(m.group(0), 8)))
            i += len(m.group(0))
        else:
            raise ParseError("unknown escape \\%s" % c)
    return "".join(out)


TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\\r\n]|\\.)*"|'(?:[^'\\\r\n]|\\.)*')
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<=|>=|<|>|&&|\|\||\(|\)|\[|\]|,|!)
  | (?P<word>[A-Za-z_$][A-Za-z0-9_]*(?:\[[^\]]*\])*)
""", re.VERBOSE | re.DOTALL)


def tokenize(expr):
    toks = []
    pos = 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ParseError("unexpected character %r at %d" % (expr[pos], pos))
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        text = m.group(0)
        if kind == "str":
            toks.append(("str", unquote(text[1:-1])))
        elif kind == "num":
            toks.append(("num", float(text) if "." in text or "e" in text.lower() else int(text)))
        elif kind == "word" and text.lower() in ("and", "or", "not", "in", "like", "true", "false"):
            toks.append(("kw", text.lower()))
        else:
            toks.append((kind, text))
    return toks


class Parser:
    """expr := term (or term)*; term := factor (and factor)*;
    factor := not factor | ( expr ) | field op value | field [not] in [..] |
    field like "pattern"."""

    def __init__(self, expr, fields):
        self.toks = tokenize(expr)
        self.i = 0
        self.fields = fields

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def expect(self, kind, text=None):
        t = self.take()
        if t[0] != kind or (text is not None and t[1] != text):
            raise ParseError("expected %s, got %r" % (text or kind, t[1]))
        return t

    def parse(self):
        if not self.toks:
            return lambda row: True
        f = self.expr()
        if self.i != len(self.toks):
            raise ParseError("unexpected %r" % (self.peek()[1],))
        return f

    def expr(self):
        left = self.term()
        while self.peek() in (("kw", "or"), ("op", "||")):
            self.take()
            right = self.term()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def term(self):
        left = self.factor()
        while self.peek() in (("kw", "and"), ("op", "&&")):
            self.take()
            right = self.factor()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def value(self):
        t = self.take()
        if t[0] in ("str", "num"):
            return t[1]
        if t == ("kw", "true"):
            return True
        if t == ("kw", "false"):
            return False
        raise ParseError("expected a value, got %r" % (t[1],))

    def factor(self):
        t = self.peek()
        if t in (("kw", "not"), ("op", "!")):
            self.take()
            inner = self.factor()
            return lambda row: not inner(row)
        if t == ("op", "("):
            self.take()
            inner = self.expr()
            self.expect("op", ")")
            return inner
        name = self.expect("word")[1]
        if name not in self.fields:
            raise ParseError("field %s not exist" % name)
        t = self.take()
        if t in (("kw", "in"), ("kw", "not")):
            negate = t == ("kw", "not")
            if negate:
                self.expect("kw", "in")
            self.expect("op", "[")
            vals = []
            while self.peek() != ("op", "]"):
                vals.append(self.value())
                if self.peek() == ("op", ","):
                    self.take()
            self.expect("op", "]")
            return lambda row: (row.get(name) in vals) != negate
        if t == ("kw", "like"):
            pat = self.take()
            if pat[0] != "str":
                raise ParseError("like needs a string")
            rx = like_regex(pat[1])
            return lambda row: isinstance(row.get(name), str) and rx.fullmatch(row[name]) is not None
        if t[0] == "op" and t[1] in ("==", "!=", "<", "<=", ">", ">="):
            v = self.value()
            op = t[1]

            def cmp(row, v=v, op=op):
                x = row.get(name)
                try:
                    return {"==": x == v, "!=": x != v, "<": x < v, "<=": x <= v,
                            ">": x > v, ">=": x >= v}[op]
                except TypeError:
                    return False
            return cmp
        raise ParseError("unexpected %r after %s" % (t[1], name))


def like_regex(pattern):
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def compile_filter(expr, coll):
    try:
        return Parser(expr or "", set(coll.field_names()) | {"$meta"}).parse()
    except ParseError as e:
        raise MilvusError(
            1100, "failed to create query plan: cannot parse expression: %s, "
                  "error: %s: invalid parameter" % (expr, e))


# ---- state -----------------------------------------------------------------

class Collection:
    def __init__(self, name, fields, dynamic):
        self.name = name
        self.fields = fields  # [{name, type, primary, auto_id, params{}}]
        self.dynamic = dynamic
        self.index = {}       # vector field -> metric
        self.loaded = False
        self.entities = []    # list of dict rows
        self.next_auto = 1

    def field_names(self):
        return [f["name"] for f in self.fields]

    def primary(self):
        return next(f for f in self.fields if f["primary"])

    def vector_field(self):
        return next((f for f in self.fields if f["type"] == "FloatVector"), None)

    def signature(self):
        return json.dumps([self.fields, self.dynamic, self.index], sort_keys=True)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.dbs = {"default"}
        self.colls = {}
        self.token = None
        self.style = {"success_code": 0, "search_shape": "flat",
                      "score_key": "distance", "describe": "params",
                      "topks": False}
        self.faults = []
        self.counts = {}
        self.last_auth = {}


STATE = State()


# ---- handlers ----------------------------------------------------------------

def ok(data=None, extra=None):
    body = {"code": STATE.style["success_code"]}
    if data is not None:
        body["data"] = data
    if extra:
        body.update(extra)
    return body


def required(body, key, req_type):
    v = body.get(key)
    if v in (None, "", []):
        raise MilvusError(
            1802, "missing required parameters, error: Key: '%s.%s' Error:Field "
                  "validation for '%s' failed on the 'required' tag"
                  % (req_type, key[0].upper() + key[1:], key[0].upper() + key[1:]))
    return v


def coll_key(body):
    db = body.get("dbName") or "default"
    if db not in STATE.dbs:
        raise MilvusError(800, "database not found[database=%s]" % db)
    return db, body.get("collectionName")


def get_coll(body, req_type="CollectionNameReq", describe=False):
    name = required(body, "collectionName", req_type)
    db, name = coll_key(body)
    c = STATE.colls.get((db, name))
    if c is None:
        if describe:
            raise MilvusError(100, "can't find collection[database=%s][collection=%s]" % (db, name))
        raise MilvusError(100, "collection not found[database=%s][collection=%s]" % (db, name))
    return c


def param(params, key):
    v = (params or {}).get(key)
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise invalid("%s %r is not an integer" % (key, v))


def h_has(body):
    required(body, "collectionName", "CollectionNameReq")
    return ok({"has": coll_key(body) in STATE.colls})


def h_describe(body):
    c = get_coll(body, describe=True)
    typename = STATE.style["describe"] == "typename"
    fields = []
    for i, f in enumerate(c.fields):
        d = {"name": f["name"], "type": f["type"], "primaryKey": f["primary"],
             "partitionKey": False, "autoId": f["auto_id"], "description": "",
             "id": 100 + i}
        if typename:
            del d["id"]
            if f["type"] == "FloatVector":
                d["type"] = "FloatVector(%d)" % f["params"]["dim"]
            elif f["type"] == "VarChar":
                d["type"] = "VarChar(%d)" % f["params"]["max_length"]
        elif f["params"]:
            d["params"] = [{"key": k, "value": str(v)} for k, v in f["params"].items()]
        fields.append(d)
    indexes = [{"fieldName": k, "indexName": k, "metricType": v} for k, v in c.index.items()]
    return ok({"collectionName": c.name, "collectionID": 4500000 + len(c.name),
               "description": "", "autoId": c.primary()["auto_id"],
               "fields": fields, "indexes": indexes,
               "load": "LoadStateLoaded" if c.loaded else "LoadStateNotLoad",
               "shardsNum": 1, "enableDynamicField": c.dynamic,
               "consistencyLevel": "Bounded", "aliases": [], "properties": []})


def parse_fields(name, schema):
    fields = []
    primaries = 0
    for f in schema.get("fields") or []:
        fname = f.get("fieldName")
        dtype = f.get("dataType")
        if not fname or not dtype:
            raise MilvusError(1802, "missing required parameters, error: fieldName and dataType")
        if dtype not in TYPES:
            raise invalid("data type %s is not supported" % dtype)
        params = {}
        etp = f.get("elementTypeParams") or {}
        if not isinstance(etp, dict):
            raise MilvusError(1801, "can only accept json format request, error: elementTypeParams")
        for k in ("dim", "max_length"):
            v = param(etp, k)
            if v is not None:
                params[k] = v
        if dtype == "VarChar" and "max_length" not in params:
            raise invalid("type param(max_length) should be specified for the field(%s) of collection %s" % (fname, name))
        if dtype == "VarChar" and not (1 <= params["max_length"] <= 65535):
            raise invalid("the maximum length specified for the field(%s) should be in (0, 65535], but got %d instead" % (fname, params["max_length"]))
        if dtype == "FloatVector":
            if "dim" not in params:
                raise invalid("dimension is not defined in field type params of field %s, check type param `dim` for vector field" % fname)
            if not (2 <= params["dim"] <= 32768):
                raise invalid("invalid dimension: %d of field %s. float vector dimension should be in range 2 ~ 32768" % (params["dim"], fname))
        primary = bool(f.get("isPrimary"))
        primaries += primary
        if primary and dtype not in ("Int64", "VarChar"):
            raise invalid("the data type of primary key should be Int64 or VarChar")
        fields.append({"name": fname, "type": dtype, "primary": primary,
                       "auto_id": primary and bool(schema.get("autoId") or schema.get("autoID")),
                       "params": params})
    if primaries != 1:
        raise invalid("there should be exactly one primary key, got %d" % primaries)
    if not any(f["type"] == "FloatVector" for f in fields):
        raise invalid("schema does not contain vector field: invalid parameter")
    return fields


def h_create(body):
    name = required(body, "collectionName", "CollectionReq")
    db, name = coll_key(body)
    schema = body.get("schema") or {}
    if schema.get("fields"):
        fields = parse_fields(name, schema)
        dynamic = bool(schema.get("enableDynamicField"))
        index_params = body.get("indexParams") or []
    else:  # the quick form
        dim = body.get("dimension")
        if not isinstance(dim, int) or dim <= 0:
            raise invalid("dimension is required for quickly create collection(default metric type: COSINE)")
        pk = body.get("primaryFieldName") or "id"
        vec = body.get("vectorFieldName") or "vector"
        id_type = body.get("idType") or "Int64"
        fields = [{"name": pk, "type": id_type, "primary": True,
                   "auto_id": bool(body.get("autoID")),
                   "params": {"max_length": 65535} if id_type == "VarChar" else {}},
                  {"name": vec, "type": "FloatVector", "primary": False,
                   "auto_id": False, "params": {"dim": dim}}]
        dynamic = True
        index_params = [{"fieldName": vec, "indexName": vec,
                         "metricType": body.get("metricType") or "COSINE"}]
    coll = Collection(name, fields, dynamic)
    for ip in index_params:
        fname = ip.get("fieldName")
        f = next((x for x in fields if x["name"] == fname), None)
        if f is None:
            raise MilvusError(1802, "missing required parameters, error: `%s` hasn't defined in schema" % fname)
        metric = (ip.get("metricType") or ip.get("metricsType") or "").upper()
        if metric not in METRICS:
            raise invalid("metric type %s not found or not supported, supported: [L2 IP COSINE]" % metric)
        if f["type"] != "FloatVector":
            raise invalid("index on a scalar field is not supported by this fake")
        coll.index[fname] = metric
    old = STATE.colls.get((db, name))
    if old is not None:
        if old.signature() != coll.signature():
            raise invalid("create duplicate collection with different parameters, collection: %s" % name)
        return ok({})
    coll.loaded = bool(coll.index)
    STATE.colls[(db, name)] = coll
    return ok({})


def h_load(body):
    c = get_coll(body)
    vf = c.vector_field()
    if vf and vf["name"] not in c.index:
        raise MilvusError(700, "index not found[collection=%s]" % c.name)
    c.loaded = True
    return ok({})


def h_release(body):
    get_coll(body).loaded = False
    return ok({})


def h_drop(body):
    required(body, "collectionName", "CollectionNameReq")
    STATE.colls.pop(coll_key(body), None)
    return ok({})


def h_list(body):
    db = body.get("dbName") or "default"
    if db not in STATE.dbs:
        raise MilvusError(800, "database not found[database=%s]" % db)
    return ok(sorted(n for (d, n) in STATE.colls if d == db))


def check_row(c, row, i):
    if not isinstance(row, dict):
        raise MilvusError(1804, "fail to deal the insert data, error: NULL:0, FALSE:1, NUMBER:2, STRING:3, TRUE:4, JSON:5: invalid parameter[expected=5][actual=%s]" % type(row).__name__)
    names = set(c.field_names())
    extra = [k for k in row if k not in names]
    if extra and not c.dynamic:
        raise MilvusError(1804, "fail to deal the insert data, error: has pass more field without dynamic schema, please check it: invalid parameter")
    out = {}
    for f in c.fields:
        n = f["name"]
        v = row.get(n)
        if f["primary"] and f["auto_id"] and v is None:
            v = c.next_auto
            c.next_auto += 1
        if f["type"] == "FloatVector":
            if v is None:
                raise MilvusError(1804, "fail to deal the insert data, error: missing vector field: %s: invalid parameter[expected=FloatVector][actual=]" % n)
            if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                raise MilvusError(1804, "fail to deal the insert data, error: json: cannot unmarshal into Go value of type []float32: invalid parameter")
            dim = f["params"]["dim"]
            if len(v) != dim:
                # The REST layer converts rows against the schema before the
                # proxy sees them (anyToColumns, convertFloatVectorToArray).
                raise MilvusError(1804, "fail to deal the insert data, error: []float32 size %d doesn't equal to vector dimension %d of FloatVector" % (len(v), dim))
            out[n] = [float(x) for x in v]
        elif f["type"] == "VarChar":
            v = "" if v is None else v if isinstance(v, str) else json.dumps(v)
            ml = f["params"]["max_length"]
            blen = len(v.encode("utf-8"))
            if blen > ml:
                raise invalid("length of varchar field %s exceeds max length, row number: %d, length: %d, max length: %d" % (n, i, blen, ml), "valid length", "length exceeds max length")
            out[n] = v
        elif f["type"] == "JSON":
            if isinstance(v, str):
                try:
                    v = json.loads(v)
                except ValueError:
                    raise invalid("invalid JSON in field %s, row number: %d" % (n, i))
            out[n] = v if v is not None else {}
        elif f["type"] == "Int64":
            if not isinstance(v, int) or isinstance(v, bool):
                raise MilvusError(1804, "fail to deal the insert data, error: strconv.ParseInt: parsing %r: invalid syntax: invalid parameter" % (v,))
            out[n] = v
        else:
            out[n] = v
    return out


def h_insert(body, upsert):
    req = "CollectionDataReq"
    c = get_coll(body, req)
    data = body.get("data")
    if not isinstance(data, list) or not data:
        raise MilvusError(1804, "fail to deal the insert data, error: missing required parameters")
    rows = [check_row(c, r, i) for i, r in enumerate(data)]
    pk = c.primary()["name"]
    if upsert:
        keys = {r[pk] for r in rows}
        c.entities = [e for e in c.entities if e[pk] not in keys]
    c.entities.extend(rows)
    ids = [r[pk] for r in rows]
    if c.primary()["type"] == "Int64":
        ids = [str(x) for x in ids]  # int64 ids go out as strings (no JS int64)
    word = "upsert" if upsert else "insert"
    return ok({word + "Count": len(rows), word + "Ids": ids})


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0:
        return 0.0
    return dot / (na * nb)


def output_row(c, e, fields):
    pk = c.primary()["name"]
    row = {pk: e[pk]}
    for f in fields:
        if f in e and f != pk:
            row[f] = e[f]
    return row


def h_search(body):
    c = get_coll(body, "SearchReqV2")
    data = required(body, "data", "SearchReqV2")
    if not c.loaded:
        raise MilvusError(101, "failed to search: collection not loaded[collection=%s]" % c.name)
    vf = c.vector_field()
    anns = body.get("annsField") or vf["name"]
    if anns != vf["name"]:
        raise MilvusError(1700, "field not found[field=%s]" % anns)
    limit = body.get("limit", 100)
    if not isinstance(limit, int) or not (1 <= limit <= QUERY_WINDOW):
        raise invalid("topk [%s] is invalid, it should be in range [1, 16384], but got %s" % (limit, limit))
    if not isinstance(data, list) or not all(isinstance(v, list) for v in data):
        raise MilvusError(1801, "can only accept json format request, error: data must be a list of vectors")
    dim = vf["params"]["dim"]
    for v in data:
        if len(v) != dim:
            # The REST layer builds the placeholder group from the schema
            # (generatePlaceholderGroup, serializeFloatVectors) and answers
            # ErrIncorrectParameterFormat wrapping ErrParameterInvalid.
            raise MilvusError(1801, "can only accept json format request, error: dimension: %d, but length of []float: %d: invalid parameter[expected=FloatVector][actual=%s]" % (dim, len(v), json.dumps(data, separators=(", ", ":"))))
    keep = compile_filter(body.get("filter"), c)
    out_fields = body.get("outputFields") or []
    key = STATE.style["score_key"]
    per_query = []
    for q in data:
        scored = [(cosine(q, e[anns]), e) for e in c.entities if keep(e)]
        scored.sort(key=lambda t: -t[0])
        hits = []
        for s, e in scored[:limit]:
            row = output_row(c, e, out_fields)
            row[key] = s
            hits.append(row)
        per_query.append(hits)
    extra = {"topks": [len(h) for h in per_query]} if STATE.style["topks"] else None
    if STATE.style["search_shape"] == "nested":
        return ok(per_query, extra)
    return ok([h for hits in per_query for h in hits], extra)


def h_query(body):
    c = get_coll(body, "QueryReqV2")
    if not c.loaded:
        raise MilvusError(101, "failed to query: collection not loaded[collection=%s]" % c.name)
    keep = compile_filter(body.get("filter"), c)
    out_fields = body.get("outputFields") or ["*"]
    rows = [e for e in c.entities if keep(e)]
    if len(out_fields) == 1 and out_fields[0].strip().lower() == "count(*)":
        return ok([{"count(*)": len(rows)}])
    limit = body.get("limit", 100)
    offset = body.get("offset", 0)
    if limit and limit > 0:
        if limit + offset > QUERY_WINDOW:
            raise invalid("invalid max query result window, (offset+limit) should be in range [1, 16384], but got %d" % (limit + offset))
        rows = rows[offset:offset + limit]
    if out_fields == ["*"]:
        out_fields = c.field_names()
    return ok([output_row(c, e, out_fields) for e in rows])


def h_delete(body):
    c = get_coll(body, "CollectionIDFilterReq")
    expr = body.get("filter")
    if not expr:
        raise MilvusError(1802, "missing required parameters, error: filter or id")
    keep = compile_filter(expr, c)
    c.entities = [e for e in c.entities if not keep(e)]
    return ok({})


ROUTES = {
    "/collections/has": h_has,
    "/collections/describe": h_describe,
    "/collections/create": h_create,
    "/collections/load": h_load,
    "/collections/release": h_release,
    "/collections/drop": h_drop,
    "/collections/list": h_list,
    "/entities/insert": lambda b: h_insert(b, False),
    "/entities/upsert": lambda b: h_insert(b, True),
    "/entities/search": h_search,
    "/entities/query": h_query,
    "/entities/delete": h_delete,
}


def control(body):
    if body.get("reset"):
        STATE.reset()
    if "token" in body:
        STATE.token = body["token"]
    if "style" in body:
        STATE.style.update(body["style"])
    if "fault" in body:
        f = dict(body["fault"])
        f.setdefault("count", 1)
        f.setdefault("path", "*")
        STATE.faults.append(f)
    if "create_db" in body:
        STATE.dbs.add(body["create_db"])
    if "release" in body:
        c = STATE.colls.get(("default", body["release"]))
        if c:
            c.loaded = False
    return {"ok": True}


def state():
    colls = {}
    for (db, name), c in STATE.colls.items():
        colls[name if db == "default" else db + "." + name] = {
            "fields": c.fields, "dynamic": c.dynamic, "index": c.index,
            "loaded": c.loaded, "rows": len(c.entities),
            "sources": sorted({e.get("source") for e in c.entities if isinstance(e.get("source"), str)}),
        }
    return {"collections": colls, "requests": STATE.counts,
            "auth": STATE.last_auth, "token": STATE.token}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "milvus-fake"

    def log_message(self, fmt, *args):
        if os.environ.get("MILVUS_FAKE_VERBOSE"):
            sys.stderr.write("milvus_fake: " + (fmt % args) + "\n")

    def send(self, status, body, ctype="application/json; charset=utf-8"):
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/fake/state":
            with STATE.lock:
                self.send(200, state())
            return
        if self.path == "/healthz":
            self.send(200, b"OK", "text/plain")
            return
        self.send(404, b"404 page not found", "text/plain")

    def take_fault(self, path):
        for f in STATE.faults:
            if f["count"] > 0 and f["path"] in ("*", path):
                f["count"] -= 1
                return dict(f)
        return None

    def do_POST(self):
        raw = self.read_body()
        path = self.path
        if path == "/fake/control":
            with STATE.lock:
                self.send(200, control(json.loads(raw or b"{}")))
            return
        if not path.startswith(API + "/") or path[len(API):] not in ROUTES:
            self.send(404, b"404 page not found", "text/plain")
            return
        with STATE.lock:
            STATE.counts[path] = STATE.counts.get(path, 0) + 1
            auth = self.headers.get("Authorization")
            STATE.last_auth[path] = auth
            token = STATE.token
            fault = self.take_fault(path)
        if token is not None and auth != "Bearer " + token:
            self.send(401, {"code": 1800, "message": "user hasn't authenticated"})
            return
        if fault and self.fault(fault):
            return
        try:
            body = json.loads(raw)
        except ValueError as e:
            self.send(200, {"code": 1801, "message": "can only accept json format request, error: invalid character looking for beginning of value: %s" % e})
            return
        if not isinstance(body, dict):
            self.send(200, {"code": 1801, "message": "can only accept json format request, error: json: cannot unmarshal array into Go value"})
            return
        with STATE.lock:
            try:
                answer = ROUTES[path[len(API):]](body)
            except MilvusError as e:
                answer = {"code": e.code, "message": e.message}
        if fault and fault["kind"] == "badshape" and "data" in answer:
            answer["data"] = "unexpected"
        self.send(200, answer)

    def fault(self, f):
        """Apply a fault; True when the request is answered (or dropped)."""
        kind = f["kind"]
        if kind == "slow":
            time.sleep(f.get("delay_ms", 1000) / 1000.0)
            return False
        if kind == "http500":
            self.send(500, b"Internal Server Error", "text/plain")
        elif kind == "http503":
            self.send(503, b"Service Unavailable", "text/plain")
        elif kind == "http401":
            self.send(401, {"code": 1800, "message": "user hasn't authenticated"})
        elif kind == "garbage":
            self.send(200, b"\x00\xffnot json{", "application/json")
        elif kind == "empty":
            self.send(200, b"", "application/json")
        elif kind == "nocode":
            self.send(200, {"data": {}})
        elif kind == "code":
            self.send(200, {"code": f.get("code", 65535), "message": f.get("message", "unexpected error")})
        elif kind == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif kind == "badshape":
            return False
        else:
            self.send(500, b"unknown fault", "text/plain")
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token", default=os.environ.get("MILVUS_FAKE_TOKEN"))
    args = ap.parse_args()
    STATE.token = args.token
    # A listen backlog for many clients connecting at once (the default, 5,
    # drops connections that then wait a second or more for a SYN retry).
    ThreadingHTTPServer.request_queue_size = 512
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


def on_sigterm(signum, frame):
    raise KeyboardInterrupt()


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, on_sigterm)
    main()
