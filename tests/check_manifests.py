#!/usr/bin/env python3
"""The platform's rules for libaiplat's Kubernetes manifests and Dockerfiles.

Called by tests/check-manifests.sh; the rules and why they exist are in
docs/decisions/0011-containers-and-manifests.md. Needs python3 and its yaml
module (Debian: python3-yaml, which yamllint depends on); nothing else.

Modes:
  --tree DEPLOY_DIR      the deploy tree: DEPLOY_DIR/kubernetes/apps/ai-ml/<app>/
                         and DEPLOY_DIR/docker/<app>.Dockerfile
  --self-test FIXTURES   every bad-* fixture must be rejected for exactly the
                         rules its "# expect:" line names, every good-* one
                         accepted, and every rule must have a bad fixture
  FILE...                check files on their own: Dockerfiles one by one, the
                         YAML files of one directory as one app
Every error is printed as "rule: where: what" and makes the exit status 1.
"""

import argparse
import json
import os
import re
import subprocess
import sys

try:
    import yaml
except ImportError:  # the shell wrapper checks first; this is a backstop
    sys.stderr.write("check-manifests: python3's yaml module is missing: "
                     "install the Debian package python3-yaml\n")
    sys.exit(1)

NAMESPACE = "ai-ml"
PART_OF = "ai-platform"
REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/component", "app.kubernetes.io/part-of")
RELOADER = "reloader.stakater.com/auto"
HEALTH_PORT = 8080
# The seed's probes, exactly (docs/decisions/0011).
LIVENESS = {"httpGet": {"path": "/health", "port": HEALTH_PORT},
            "initialDelaySeconds": 10, "periodSeconds": 30}
READINESS = {"httpGet": {"path": "/ready", "port": HEALTH_PORT},
             "initialDelaySeconds": 5, "periodSeconds": 10}
# The seed's cluster URLs: every ConfigMap that sets one sets this value.
SEED_URLS = {"NATS_URL": "nats://nats.ai-ml.svc.cluster.local:4222",
             "VLLM_URL": "http://llm-draft.ai-ml.svc.cluster.local:8000/v1"}
SECRET_SUFFIXES = ("_TOKEN", "_PASSWORD", "_API_KEY", "_NKEY_SEED")
# The library's own test for secret-looking names (lib/log.c,
# aiplat_log_key_is_secret), used for names outside the table.
SECRET_MARKS = ("password", "passwd", "secret", "token", "apikey", "api_key",
                "api-key", "authorization", "credential", "seed", "nkey",
                "private_key")
FLOATING_TAGS = {"latest", "main", "master", "stable", "edge", "dev",
                 "nightly", "head"}
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SECRET_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")  # {app}-{type}

RULES = {
    "yamllint": "yamllint (with the checked-in .yamllint) reports a problem",
    "parse": "a file is not valid YAML or not a Kubernetes object",
    "label": "a required app.kubernetes.io/* label is missing or wrong",
    "reloader": "a Deployment lacks reloader.stakater.com/auto: \"true\"",
    "description": "a Deployment lacks its description annotation",
    "probe": "liveness/readiness probes differ from the seed",
    "resources": "cpu/memory requests and limits missing or inconsistent",
    "secret-literal": "a secret's value is written in a manifest",
    "secret-ref": "a secret is referenced other than by secretKeyRef or "
                  "NAME_FILE on a secret volume",
    "image": "an image is untagged, floating (latest) or not pinned",
    "ks": "a Flux Kustomization differs from the seed's structure",
    "env-unknown": "an environment variable the library does not know",
    "security": "the pod or container securityContext is not hardened",
    "grace": "terminationGracePeriodSeconds is not above SHUTDOWN_GRACE",
    "namespace": "an object names a namespace other than ai-ml",
    "config": "configuration values are malformed or differ from the seed",
    "service": "a Service does not select the app's pods on port 8080",
    "structure": "the app tree, a kustomization or a reference is incomplete",
    "dockerfile": "a Dockerfile breaks the container rules",
    "monitor": "a ServiceMonitor/PodMonitor does not scrape the app's /metrics",
    "otel": "the OTEL_* settings are not off by default or not well formed",
    "dashboard": "a Grafana dashboard is malformed or queries unknown metrics",
}

# The OpenTelemetry SDK's standard variables the services read
# (docs/metrics.md); known to every app.
OTEL_VARS = {"OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
             "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER",
             "OTEL_TRACES_SAMPLER_ARG"}
OTEL_SAMPLERS = {"always_on", "always_off", "traceidratio", "parentbased_always_on",
                 "parentbased_always_off", "parentbased_traceidratio"}
# A collector Service in the cluster: http(s)://NAME.NAMESPACE.svc.cluster.local:PORT
OTEL_ENDPOINT_RE = re.compile(r"^https?://[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9-]+"
                              r"\.svc\.cluster\.local:\d{1,5}/?$")
MONITOR_API = "monitoring.coreos.com/v1"
# What the platform's dashboard must show: each family in some query.
DASHBOARD_NEEDS = ("aiplat_requests_total", "aiplat_request_errors_total",
                   "aiplat_request_duration_seconds",
                   "aiplat_model_time_to_first_token_seconds",
                   "aiplat_model_output_tokens_total", "aiplat_requests_in_flight",
                   "aiplat_nats_reconnects_total")


class Report:
    def __init__(self):
        self.errors = []

    def err(self, rule, where, msg):
        assert rule in RULES, rule
        self.errors.append((rule, where, msg))

    def rules(self):
        return {r for r, _, _ in self.errors}

    def print(self, out=sys.stdout, prefix=""):
        for rule, where, msg in self.errors:
            out.write(f"{prefix}{rule}: {where}: {msg}\n")


class Context:
    """What the rules compare against, read from the source tree."""

    def __init__(self, src, yamllint_cmd):
        self.src = src
        self.yamllint_cmd = yamllint_cmd
        self.table = self._read_table(os.path.join(src, "lib", "config_table.h"))
        self.extra_env = self._read_extra_env(
            os.path.join(src, "deploy", "service-env.txt"))
        self.debian_build_deps = self._read_configure_deps(
            os.path.join(src, "configure.ac"))
        self.dist_prefix = self._read_dist_prefix(os.path.join(src, "configure.ac"))
        self.metric_names = self._read_metric_names(os.path.join(src, "lib"))

    @staticmethod
    def _read_metric_names(libdir):
        """Every aiplat_* family name the library registers (string literals
        in lib/*.c), and the process_* names it renders."""
        names = set()
        for f in sorted(os.listdir(libdir)):
            if f.endswith(".c"):
                with open(os.path.join(libdir, f), encoding="utf-8") as fh:
                    names |= set(re.findall(r'"((?:aiplat|process)_[a-z0-9_]+)"', fh.read()))
        return names

    @staticmethod
    def _read_table(path):
        row = re.compile(r'^\s*X\(([A-Z][A-Z0-9_]*),\s*(NULL|"(?:[^"\\]|\\.)*"),'
                         r'\s*([A-Z]+),\s*([01]),')
        table = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = row.match(line)
                if m:
                    default = None if m.group(2) == "NULL" else m.group(2)[1:-1]
                    table[m.group(1)] = {"default": default, "type": m.group(3),
                                         "secret": m.group(4) == "1"}
        if len(table) < 10:
            raise SystemExit(f"check-manifests: only {len(table)} settings read "
                             f"from {path}: its row format changed?")
        return table

    @staticmethod
    def _read_extra_env(path):
        extra = {}
        if not os.path.exists(path):
            return extra
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split(None, 2)
                if len(parts) < 3 or not re.match(r"^[A-Z][A-Z0-9_]*$", parts[0]):
                    raise SystemExit(f"check-manifests: {path}:{n}: expected "
                                     f"'NAME SERVICES|* reader: reason'")
                extra[parts[0]] = set(parts[1].split(","))
        return extra

    @staticmethod
    def _read_configure_deps(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        # Blocks a --disable-X option leaves out (the images configure with
        # them disabled) do not count.
        text = re.sub(r"dnl optional-begin [a-z-]+\n.*?dnl optional-end [a-z-]+\n?", "",
                      text, flags=re.S)
        pkgs = set(re.findall(r"install the Debian package ([a-z0-9][a-z0-9.+-]*)",
                              text))
        pkgs |= set(re.findall(r"AIPLAT_REQUIRE\(\[[A-Z0-9_]+\],\s*\[[^]]*\],"
                               r"\s*\[([a-z0-9.+-]+)\]\)", text))
        return pkgs

    @staticmethod
    def _read_dist_prefix(path):
        with open(path, encoding="utf-8") as f:
            m = re.search(r"AC_INIT\(\[([^]]+)\],\s*\[([^]]+)\]", f.read())
        return f"{m.group(1)}-{m.group(2)}/" if m else "libaiplat-0.0.0/"

    def known_env(self, name, app):
        if name in self.table or name in OTEL_VARS:
            return True
        if name.endswith("_FILE") and name[:-5] in self.table:
            return True  # lib/config.c reads NAME_FILE for every NAME
        scope = self.extra_env.get(name)
        return scope is not None and ("*" in scope or app in scope)

    def is_secret(self, name):
        if name.endswith("_FILE"):
            return False  # a path; where it points is rule secret-ref
        if name in self.table:
            return self.table[name]["secret"] or name.endswith(SECRET_SUFFIXES)
        lower = name.lower()
        return name.endswith(SECRET_SUFFIXES) or any(m in lower for m in SECRET_MARKS)

    def default_seconds(self, name):
        entry = self.table.get(name)
        return parse_duration(entry["default"]) if entry and entry["default"] else None


# ---------------------------------------------------------------- helpers

def parse_duration(text):
    """Seconds of a Go-style duration ("20s", "1m30s", "500ms"); None if bad."""
    if not isinstance(text, str) or not text:
        return None
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        return None
    return sum(float(a) * units[b] for a, b in parts)


def parse_quantity(value, cpu):
    """A Kubernetes quantity in cores or bytes; None if malformed."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = re.match(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$", str(value))
    if not m:
        return None
    n, suffix = float(m.group(1)), m.group(2) or ""
    factors = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
               "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}
    if cpu and suffix not in ("", "m"):
        return None
    return n * factors[suffix]


def diff(expected, actual, path=""):
    """Differences between two YAML values, as readable lines; types count."""
    out = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or '.'}: expected a mapping, got {actual!r}"]
        for k, v in expected.items():
            p = f"{path}.{k}" if path else k
            if k not in actual:
                out.append(f"{p}: missing (expected {v!r})")
            else:
                out.extend(diff(v, actual[k], p))
        for k in actual:
            if k not in expected:
                out.append(f"{path + '.' if path else ''}{k}: not in the seed's structure")
        return out
    if type(expected) is not type(actual) or expected != actual:
        return [f"{path or '.'}: expected {expected!r}, got {actual!r}"]
    return []


def get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def image_problem(image):
    """Why an image reference is not pinned, or None."""
    if not isinstance(image, str) or not image.strip():
        return "no image"
    ref, _, digest = image.partition("@")
    if digest and not re.match(r"^sha256:[0-9a-f]{64}$", digest):
        return f"malformed digest in {image!r}"
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{image!r} has no tag (pin a version, e.g. :1.2.3)"
    tag = last.split(":", 1)[1]
    if not tag:
        return f"{image!r} has an empty tag"
    if tag.lower() in FLOATING_TAGS:
        return f"{image!r} uses the floating tag {tag!r}; pin a version"
    if "$" in image or "{" in image:
        return f"{image!r} is not a literal reference"
    return None


# ---------------------------------------------------------------- YAML files

def run_yamllint(ctx, path, report):
    cmd = list(ctx.yamllint_cmd) + ["--strict", "-f", "parsable", "-c",
                                    os.path.join(ctx.src, ".yamllint"), path]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        report.err("yamllint", path, f"cannot run {cmd[0]}: {e}")
        return
    if res.returncode != 0:
        lines = [l for l in (res.stdout + res.stderr).splitlines() if l.strip()]
        for line in lines or [f"exit status {res.returncode}"]:
            report.err("yamllint", path, line.replace(path + ":", "line ", 1))


def load_docs(path, report):
    """The file's documents as (doc, raw text) pairs; [] on a parse error."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        docs = list(yaml.safe_load_all(text))
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        report.err("parse", path, str(e).replace("\n", " "))
        return []
    out = []
    for i, (doc, node) in enumerate(zip(docs, nodes)):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            report.err("parse", path, f"document {i + 1} is not a Kubernetes object "
                                      f"(apiVersion and kind)")
            continue
        raw = text[node.start_mark.index:node.end_mark.index]
        # The document's first key starts at its node; keep the line's indent.
        line_start = text.rfind("\n", 0, node.start_mark.index) + 1
        out.append((doc, text[line_start:node.start_mark.index] + raw))
    return out


class App:
    """One app's objects: from its app/ directory, or from one file."""

    def __init__(self, name):
        self.name = name          # None in file mode until a name is found
        self.objects = []         # (doc, path, raw)
        self.flux = []            # Flux Kustomizations (ks.yaml)

    def of_kind(self, kind):
        return [(d, p) for d, p, _ in self.objects if d.get("kind") == kind]


def where(path, doc):
    return f"{path}: {doc.get('kind')}/{get(doc, 'metadata', 'name', default='?')}"


def check_labels(app, doc, labels, at, report):
    if not isinstance(labels, dict):
        report.err("label", at, "no labels")
        return
    for key in REQUIRED_LABELS:
        value = labels.get(key)
        if not isinstance(value, str) or not value:
            report.err("label", at, f"missing required label {key}")
        elif not NAME_RE.match(value):
            report.err("label", at, f"label {key}={value!r} is not lowercase-hyphen")
    if labels.get("app.kubernetes.io/part-of") not in (None, PART_OF):
        report.err("label", at, f"app.kubernetes.io/part-of must be {PART_OF!r}, got "
                                f"{labels.get('app.kubernetes.io/part-of')!r}")
    name = labels.get("app.kubernetes.io/name")
    if app.name and name is not None and name != app.name:
        report.err("label", at, f"app.kubernetes.io/name is {name!r}, the app is {app.name!r}")


def check_flux_ks(ctx, app, doc, raw, path, report):
    name = get(doc, "metadata", "name")
    at = f"{path}: Kustomization/{name}"
    expected_app = app.name or name
    if not isinstance(expected_app, str) or not NAME_RE.match(expected_app):
        report.err("ks", at, f"metadata.name {name!r} is not an app name")
        return
    expected = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": expected_app, "namespace": "flux-system"},
        "spec": {
            "targetNamespace": NAMESPACE,
            "commonMetadata": {"labels": {"app.kubernetes.io/name": expected_app}},
            "path": f"./kubernetes/apps/{NAMESPACE}/{expected_app}/app",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            "wait": True,
            "interval": "30m",
            "retryInterval": "1m",
            "timeout": "5m",
        },
    }
    for line in diff(expected, doc):
        report.err("ks", at, line)
    # The seed names the app once, as an anchor, and refers to it by alias.
    if not re.search(r"(?m)^  name: &app " + re.escape(expected_app) + r"[ \t]*$", raw):
        report.err("ks", at, f"metadata.name must be written '&app {expected_app}' "
                             f"(the seed's anchor)")
    if not re.search(r"(?m)^ +app\.kubernetes\.io/name: \*app[ \t]*$", raw):
        report.err("ks", at, "commonMetadata's app.kubernetes.io/name must be the alias *app")


def env_sources(app, container):
    """The container's effective settings: name -> (value or None, how)."""
    settings = {}
    for ref in container.get("envFrom") or []:
        cm = get(ref, "configMapRef", "name")
        for doc, _ in app.of_kind("ConfigMap"):
            if get(doc, "metadata", "name") == cm and isinstance(doc.get("data"), dict):
                for k, v in doc["data"].items():
                    settings[k] = (v, "configmap")
    for e in container.get("env") or []:
        if isinstance(e, dict) and "name" in e:
            settings[e["name"]] = (e.get("value"), "env")
    return settings


def secret_mounts(pod, container):
    """Mount paths of the container's volumes that hold Kubernetes Secrets."""
    secret_vols = set()
    for v in pod.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if "secret" in v:
            secret_vols.add(v.get("name"))
        sources = get(v, "projected", "sources") or []
        if sources and all(isinstance(s, dict) and "secret" in s for s in sources):
            secret_vols.add(v.get("name"))
    return [m.get("mountPath", "") for m in container.get("volumeMounts") or []
            if isinstance(m, dict) and m.get("name") in secret_vols]


def check_env(ctx, app, pod, container, at, report):
    mounts = secret_mounts(pod, container)
    for e in container.get("env") or []:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            report.err("parse", at, f"malformed env entry {e!r}")
            continue
        name = e["name"]
        if not ctx.known_env(name, app.name):
            report.err("env-unknown", at, f"env {name} is not a setting of lib/config_table.h "
                                          f"(nor NAME_FILE, nor in deploy/service-env.txt)")
        value_from = e.get("valueFrom")
        if ctx.is_secret(name):
            if "value" in e:
                report.err("secret-literal", at, f"env {name} is a secret but has a literal "
                                                 f"value; use valueFrom.secretKeyRef")
            elif not isinstance(value_from, dict) or "secretKeyRef" not in value_from:
                how = next(iter(value_from), "nothing") if isinstance(value_from, dict) else "nothing"
                report.err("secret-ref", at, f"env {name} is a secret but comes from {how}; "
                                             f"use valueFrom.secretKeyRef")
        if isinstance(value_from, dict) and "secretKeyRef" in value_from:
            ref = value_from["secretKeyRef"] or {}
            sname, key = ref.get("name"), ref.get("key")
            if not isinstance(sname, str) or not SECRET_NAME_RE.match(sname):
                report.err("secret-ref", at, f"env {name}: secret name {sname!r} is not "
                                             f"'{{app}}-{{type}}' (e.g. milvus-credentials)")
            if not isinstance(key, str) or not key:
                report.err("secret-ref", at, f"env {name}: secretKeyRef has no key")
        if "value" in e and not isinstance(e["value"], str):
            report.err("config", at, f"env {name}: value {e['value']!r} must be a string "
                                     f"(quote it)")
        if name.endswith("_FILE") and ctx.is_secret(name[:-5]):
            path = e.get("value")
            if not isinstance(path, str) or not any(
                    m and (path == m or path.startswith(m.rstrip("/") + "/")) for m in mounts):
                report.err("secret-ref", at, f"env {name}={path!r} is not a file on a mounted "
                                             f"Secret volume")
    for ref in container.get("envFrom") or []:
        if isinstance(ref, dict) and "secretRef" in ref:
            report.err("secret-ref", at, "envFrom.secretRef imports unnamed keys; list each "
                                         "secret with env[].valueFrom.secretKeyRef")
        elif isinstance(ref, dict) and "configMapRef" in ref:
            cm = get(ref, "configMapRef", "name")
            if cm not in [get(d, "metadata", "name") for d, _ in app.of_kind("ConfigMap")]:
                report.err("structure", at, f"envFrom ConfigMap {cm!r} is not part of the app")


def check_security(pod, container, at, report):
    psc = pod.get("securityContext") or {}
    csc = container.get("securityContext") or {}

    def eff(key):
        return csc.get(key, psc.get(key))

    if eff("runAsNonRoot") is not True:
        report.err("security", at, "runAsNonRoot must be true")
    uid = eff("runAsUser")
    if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
        report.err("security", at, f"runAsUser must be a numeric non-root uid, got {uid!r}")
    gid = eff("runAsGroup")
    if gid is not None and (not isinstance(gid, int) or isinstance(gid, bool) or gid <= 0):
        report.err("security", at, f"runAsGroup must be a numeric non-root gid, got {gid!r}")
    seccomp = get(csc, "seccompProfile", "type") or get(psc, "seccompProfile", "type")
    if seccomp != "RuntimeDefault":
        report.err("security", at, f"seccompProfile.type must be RuntimeDefault, got {seccomp!r}")
    if csc.get("allowPrivilegeEscalation") is not False:
        report.err("security", at, "allowPrivilegeEscalation must be false")
    if csc.get("readOnlyRootFilesystem") is not True:
        report.err("security", at, "readOnlyRootFilesystem must be true")
    if csc.get("privileged"):
        report.err("security", at, "privileged must not be set")
    caps = csc.get("capabilities") or {}
    if caps.get("drop") != ["ALL"]:
        report.err("security", at, f"capabilities.drop must be [ALL], got {caps.get('drop')!r}")
    if caps.get("add"):
        report.err("security", at, f"capabilities.add must be empty, got {caps.get('add')!r}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            report.err("security", at, f"{key} must not be set")
    if pod.get("automountServiceAccountToken") is not False:
        report.err("security", at, "automountServiceAccountToken must be false "
                                   "(the services do not call the Kubernetes API)")
    if pod.get("enableServiceLinks") is not False:
        report.err("security", at, "enableServiceLinks must be false (service links inject "
                                   "variables such as MILVUS_PORT=tcp://...)")
    return uid


def check_resources(container, at, report):
    res = container.get("resources")
    if not isinstance(res, dict):
        report.err("resources", at, "no resources")
        return
    for kind in ("cpu", "memory"):
        req = parse_quantity(get(res, "requests", kind), kind == "cpu")
        lim = parse_quantity(get(res, "limits", kind), kind == "cpu")
        if req is None:
            report.err("resources", at, f"requests.{kind} missing or malformed: "
                                        f"{get(res, 'requests', kind)!r}")
        if lim is None:
            report.err("resources", at, f"limits.{kind} missing or malformed: "
                                        f"{get(res, 'limits', kind)!r}")
        if req is not None and lim is not None and req > lim:
            report.err("resources", at, f"requests.{kind} is above limits.{kind}")


def check_deployment(ctx, app, doc, path, report):
    at = where(path, doc)
    meta = doc.get("metadata") or {}
    check_labels(app, doc, meta.get("labels"), at + " metadata", report)
    ann = meta.get("annotations") or {}
    if ann.get(RELOADER) != "true":
        report.err("reloader", at, f"annotation {RELOADER} must be \"true\" (a string), "
                                   f"got {ann.get(RELOADER)!r}")
    if not isinstance(ann.get("description"), str) or not ann["description"].strip():
        report.err("description", at, "annotation description is missing")
    spec = doc.get("spec") or {}
    template = spec.get("template") or {}
    tlabels = get(template, "metadata", "labels")
    check_labels(app, doc, tlabels, at + " pod template", report)
    if isinstance(tlabels, dict):
        for key in REQUIRED_LABELS:
            if key in tlabels and key in (meta.get("labels") or {}) \
                    and tlabels[key] != meta["labels"][key]:
                report.err("label", at, f"pod template label {key} differs from the Deployment's")
        selector = get(spec, "selector", "matchLabels") or {}
        if "app.kubernetes.io/name" not in selector:
            report.err("label", at, "selector.matchLabels lacks app.kubernetes.io/name")
        for k, v in selector.items():
            if tlabels.get(k) != v:
                report.err("label", at, f"selector {k}={v!r} does not match the pod template")
    pod = template.get("spec") or {}
    containers = pod.get("containers") or []
    if not containers:
        report.err("parse", at, "no containers")
    grace_limit = ctx.default_seconds("SHUTDOWN_GRACE")
    uids = set()
    for c in containers + (pod.get("initContainers") or []):
        cat = f"{at} container {c.get('name', '?')}"
        problem = image_problem(c.get("image"))
        if problem:
            report.err("image", cat, problem)
        uids.add(check_security(pod, c, cat, report))
        check_env(ctx, app, pod, c, cat, report)
    for c in containers:
        cat = f"{at} container {c.get('name', '?')}"
        for field, seed in (("livenessProbe", LIVENESS), ("readinessProbe", READINESS)):
            probe = c.get(field)
            if probe is None:
                report.err("probe", cat, f"{field} missing")
                continue
            for line in diff(seed, probe, field):
                report.err("probe", cat, line)
        check_resources(c, cat, report)
        ports = [p.get("containerPort") for p in c.get("ports") or [] if isinstance(p, dict)]
        if HEALTH_PORT not in ports:
            report.err("service", cat, f"containerPort {HEALTH_PORT} (health and metrics) "
                                       f"is not declared")
        settings = env_sources(app, c)
        port = settings.get("HEALTH_PORT", (None, None))[0]
        if port is not None and str(port) != str(HEALTH_PORT):
            report.err("config", cat, f"HEALTH_PORT={port!r}, but the probes use {HEALTH_PORT}")
        grace = settings.get("SHUTDOWN_GRACE", (None, None))[0]
        if grace is not None:
            grace_limit = parse_duration(grace)
            if grace_limit is None:
                report.err("config", cat, f"SHUTDOWN_GRACE={grace!r} is not a duration")
    tgps = pod.get("terminationGracePeriodSeconds")
    if not isinstance(tgps, int) or isinstance(tgps, bool):
        report.err("grace", at, f"terminationGracePeriodSeconds must be set, got {tgps!r}")
    elif grace_limit is not None and tgps <= grace_limit:
        report.err("grace", at, f"terminationGracePeriodSeconds={tgps} is not above "
                                f"SHUTDOWN_GRACE ({grace_limit:g}s)")
    return {u for u in uids if isinstance(u, int)}


def check_configmap(ctx, app, doc, path, report):
    at = where(path, doc)
    data = doc.get("data")
    if not isinstance(data, dict):
        report.err("config", at, "no data")
        return
    for key, value in data.items():
        if not ctx.known_env(key, app.name):
            report.err("env-unknown", at, f"{key} is not a setting of lib/config_table.h "
                                          f"(nor NAME_FILE, nor in deploy/service-env.txt)")
        if ctx.is_secret(key):
            report.err("secret-literal", at, f"{key} is a secret and cannot live in a "
                                             f"ConfigMap; use secretKeyRef")
        if not isinstance(value, str):
            report.err("config", at, f"{key}: value {value!r} must be a string (quote it)")
        if key in SEED_URLS and value != SEED_URLS[key]:
            report.err("config", at, f"{key}={value!r}; the platform's is {SEED_URLS[key]!r}")
    check_otel(app, data, at, report)


def check_otel(app, data, at, report):
    """The OTEL_* settings of a ConfigMap: off by default, well formed."""
    if not any(k in OTEL_VARS for k in data):
        return
    if data.get("OTEL_SDK_DISABLED") != "true":
        report.err("otel", at, f"OTEL_SDK_DISABLED must be \"true\" (tracing is off until a "
                               f"collector runs), got {data.get('OTEL_SDK_DISABLED')!r}")
    name = data.get("OTEL_SERVICE_NAME")
    if app.name and name != app.name:
        report.err("otel", at, f"OTEL_SERVICE_NAME is {name!r}, the app is {app.name!r}")
    endpoint = data.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not isinstance(endpoint, str) or not OTEL_ENDPOINT_RE.match(endpoint):
        report.err("otel", at, f"OTEL_EXPORTER_OTLP_ENDPOINT={endpoint!r} is not a collector "
                               f"Service URL (http://NAME.NAMESPACE.svc.cluster.local:PORT)")
    sampler = data.get("OTEL_TRACES_SAMPLER")
    if sampler is not None and sampler not in OTEL_SAMPLERS:
        report.err("otel", at, f"OTEL_TRACES_SAMPLER={sampler!r} is not one of "
                               f"{', '.join(sorted(OTEL_SAMPLERS))}")
    arg = data.get("OTEL_TRACES_SAMPLER_ARG")
    if arg is not None:
        try:
            ok = 0.0 <= float(arg) <= 1.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            report.err("otel", at, f"OTEL_TRACES_SAMPLER_ARG={arg!r} is not a ratio in [0, 1]")
    attrs = data.get("OTEL_RESOURCE_ATTRIBUTES")
    if attrs is not None and not re.match(r"^[^=,\s]+=[^,]*(,[^=,\s]+=[^,]*)*$", str(attrs)):
        report.err("otel", at, f"OTEL_RESOURCE_ATTRIBUTES={attrs!r} is not key=value,...")


def check_monitor(app, doc, path, report):
    """A ServiceMonitor scrapes /metrics through the app's Service on its
    8080 port; a PodMonitor through the pods' 8080 container port."""
    at = where(path, doc)
    kind = doc.get("kind")
    if str(doc.get("apiVersion")) != MONITOR_API:
        report.err("monitor", at, f"apiVersion {doc.get('apiVersion')!r}; expected {MONITOR_API}")
    spec = doc.get("spec") or {}
    selector = get(spec, "selector", "matchLabels") or {}
    if kind == "ServiceMonitor":
        targets = [(get(d, "metadata", "labels") or {},
                    {p.get("name") for p in get(d, "spec", "ports") or []
                     if isinstance(p, dict) and p.get("port") == HEALTH_PORT})
                   for d, _ in app.of_kind("Service")]
        key = "endpoints"
    else:
        targets = [(get(d, "spec", "template", "metadata", "labels") or {},
                    {p.get("name") for c in get(d, "spec", "template", "spec", "containers") or []
                     for p in c.get("ports") or []
                     if isinstance(p, dict) and p.get("containerPort") == HEALTH_PORT})
                   for d, _ in app.of_kind("Deployment")]
        key = "podMetricsEndpoints"
    matched = [ports for labels, ports in targets
               if selector and all(labels.get(k) == v for k, v in selector.items())]
    if not matched:
        report.err("monitor", at, f"selector {selector!r} matches no "
                                  f"{'Service' if kind == 'ServiceMonitor' else 'pod'} of the app")
    ns = get(spec, "namespaceSelector", "matchNames")
    if ns is not None and ns != [NAMESPACE]:
        report.err("monitor", at, f"namespaceSelector.matchNames must be [{NAMESPACE}], got {ns!r}")
    endpoints = spec.get(key) or []
    if not endpoints:
        report.err("monitor", at, f"no {key}")
    port_names = set().union(*matched) if matched else set()
    for e in endpoints:
        if not isinstance(e, dict):
            report.err("monitor", at, f"malformed endpoint {e!r}")
            continue
        if matched and e.get("port") not in port_names:
            report.err("monitor", at, f"endpoint port {e.get('port')!r} is not the named "
                                      f"{HEALTH_PORT} port ({', '.join(sorted(map(str, port_names)))})")
        if e.get("path", "/metrics") != "/metrics":
            report.err("monitor", at, f"endpoint path {e.get('path')!r}; the services serve /metrics")
        interval = parse_duration(e.get("interval"))
        if interval is None or not 5 <= interval <= 300:
            report.err("monitor", at, f"endpoint interval {e.get('interval')!r} must be a "
                                      f"duration from 5s to 5m")
        timeout = e.get("scrapeTimeout")
        if timeout is not None and (parse_duration(timeout) is None or interval is None
                                    or parse_duration(timeout) > interval):
            report.err("monitor", at, f"scrapeTimeout {timeout!r} is not a duration within "
                                      f"the interval")


def check_service(app, doc, path, report):
    at = where(path, doc)
    selector = get(doc, "spec", "selector") or {}
    pods = [get(d, "spec", "template", "metadata", "labels") or {}
            for d, _ in app.of_kind("Deployment")]
    if not selector or not any(all(p.get(k) == v for k, v in selector.items()) for p in pods):
        report.err("service", at, f"selector {selector!r} matches no pod template of the app")
    named = {p.get("name") for d, _ in app.of_kind("Deployment")
             for c in get(d, "spec", "template", "spec", "containers") or []
             for p in c.get("ports") or []
             if isinstance(p, dict) and p.get("containerPort") == HEALTH_PORT and p.get("name")}
    ports = get(doc, "spec", "ports") or []
    if not any(isinstance(p, dict) and p.get("port") == HEALTH_PORT
               and (p.get("targetPort") == HEALTH_PORT or p.get("targetPort") in named)
               for p in ports):
        report.err("service", at, f"no port {HEALTH_PORT} targeting the container's http port")


def check_app_objects(ctx, app, report):
    """Rules on every object of one app; returns the uids the pods run as."""
    uids = set()
    for doc, path, raw in app.objects:
        kind, api = doc.get("kind"), str(doc.get("apiVersion"))
        at = where(path, doc)
        if kind == "Kustomization" and api.startswith("kustomize.config.k8s.io/"):
            continue  # an app/kustomization.yaml: rule structure
        ns = get(doc, "metadata", "namespace")
        if ns is not None and ns != NAMESPACE:
            report.err("namespace", at, f"namespace {ns!r}; the apps live in {NAMESPACE!r} "
                                        f"(set by the ks.yaml's targetNamespace)")
        name = get(doc, "metadata", "name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            report.err("parse", at, f"metadata.name {name!r} is not a lowercase-hyphen name")
        if kind == "Secret":
            report.err("secret-literal", at, "a Secret object in Git holds its values in the "
                                             "clear; create it outside (External Secrets) and "
                                             "reference it with secretKeyRef")
            continue
        if kind == "Deployment":
            if api != "apps/v1":
                report.err("parse", at, f"apiVersion {api!r}; expected apps/v1")
            uids |= check_deployment(ctx, app, doc, path, report)
        else:
            check_labels(app, doc, get(doc, "metadata", "labels"), at, report)
            if kind == "ConfigMap":
                check_configmap(ctx, app, doc, path, report)
            elif kind == "Service":
                check_service(app, doc, path, report)
            elif kind in ("ServiceMonitor", "PodMonitor"):
                check_monitor(app, doc, path, report)
    return uids


def classify(app, docs, path):
    for doc, raw in docs:
        if doc.get("kind") == "Kustomization" and \
                str(doc.get("apiVersion")).startswith("kustomize.toolkit.fluxcd.io"):
            app.flux.append((doc, path, raw))
        else:
            app.objects.append((doc, path, raw))


# ---------------------------------------------------------------- dashboards

def promql_problem(expr):
    """Why a query cannot be PromQL at a glance (brackets, quotes), or None.
    promtool parses it fully where it is installed (check_dashboard_promql)."""
    pairs, stack, quote = {")": "(", "]": "[", "}": "{"}, [], None
    for ch in expr:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return f"unbalanced {ch!r}"
    if quote or stack:
        return "unclosed " + (quote or stack[-1])
    return None


def dashboard_exprs(doc):
    for p in doc.get("panels") or []:
        for t in (p.get("targets") or []) if isinstance(p, dict) else []:
            if isinstance(t, dict):
                yield p, t


def check_dashboard(ctx, path, report):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        report.err("dashboard", path, f"not JSON: {e}")
        return
    if not isinstance(doc, dict):
        report.err("dashboard", path, "not a JSON object")
        return
    for key in ("uid", "title"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            report.err("dashboard", path, f"no {key}")
    names = [v.get("name") for v in get(doc, "templating", "list", default=[]) or []
             if isinstance(v, dict)]
    if "datasource" not in names:
        report.err("dashboard", path, "no datasource variable (the data source is chosen "
                                      "on import, never a fixed uid)")
    panels = doc.get("panels")
    if not isinstance(panels, list) or not panels:
        report.err("dashboard", path, "no panels")
        return
    ids = [p.get("id") for p in panels if isinstance(p, dict)]
    if len(ids) != len(set(ids)) or len(ids) != len(panels):
        report.err("dashboard", path, "panel ids are missing or repeated")
    used = set()
    for p in panels:
        at = f"{path}: panel {p.get('id')} {p.get('title')!r}" if isinstance(p, dict) else path
        if not isinstance(p, dict) or not p.get("title") or not isinstance(p.get("gridPos"), dict):
            report.err("dashboard", at, "a panel needs a title and a gridPos")
            continue
        if get(p, "datasource", "uid") != "${datasource}":
            report.err("dashboard", at, "datasource uid must be ${datasource}")
        targets = p.get("targets") or []
        if not targets:
            report.err("dashboard", at, "no targets")
        for t in targets:
            expr = t.get("expr") if isinstance(t, dict) else None
            if not isinstance(expr, str) or not expr.strip():
                report.err("dashboard", at, "a target has no expr")
                continue
            problem = promql_problem(expr)
            if problem:
                report.err("dashboard", at, f"{problem} in {expr!r}")
            for m in re.findall(r"\b((?:aiplat|process)_[a-z0-9_]+)", expr):
                base = re.sub(r"_(bucket|sum|count)$", "", m)
                used.add(base)
                if m not in ctx.metric_names and base not in ctx.metric_names:
                    report.err("dashboard", at, f"{m} is not a metric the library exports "
                                                f"(lib/*.c)")
    for need in DASHBOARD_NEEDS:
        if need not in used:
            report.err("dashboard", path, f"no panel queries {need}")


def check_grafana(ctx, deploy, report):
    gdir = os.path.join(deploy, "grafana")
    files = sorted(f for f in os.listdir(gdir) if f.endswith(".json")) \
        if os.path.isdir(gdir) else []
    if not files:
        report.err("structure", gdir, "no Grafana dashboard (*.json)")
        return
    for f in files:
        check_dashboard(ctx, os.path.join(gdir, f), report)
    kfile = os.path.join(gdir, "kustomization.yaml")
    if not os.path.exists(kfile):
        report.err("structure", kfile, "missing (the dashboards' ConfigMap)")
        return
    run_yamllint(ctx, kfile, report)
    listed = [x for doc, _ in load_docs_plain(kfile, report)
              for g in doc.get("configMapGenerator") or [] for x in g.get("files") or []]
    for f in files:
        if f not in listed:
            report.err("structure", kfile, f"its configMapGenerator does not list {f}")


def load_docs_plain(path, report):
    """YAML documents that are not Kubernetes objects (a kustomization)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [(d, None) for d in yaml.safe_load_all(f) if isinstance(d, dict)]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        report.err("parse", path, str(e).replace("\n", " "))
        return []


# ---------------------------------------------------------------- Dockerfiles

def dockerfile_instructions(text):
    """(lineno, INSTRUCTION, args) with continuations joined, comments dropped."""
    out, buf, start = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    if buf:
        word, _, rest = buf.partition(" ")
        out.append((start, word.upper(), rest.strip()))
    return out


def image_deps_replaces(ctx):
    """The build-dependencies tools/image-deps.sh builds from Debian's source
    packages instead (its `# Replaces:` line)."""
    try:
        with open(os.path.join(ctx.src, "tools", "image-deps.sh"), encoding="utf-8") as f:
            for line in f:
                m = re.match(r"#\s*Replaces:\s*(.*)", line)
                if m:
                    return set(m.group(1).split())
    except OSError:
        pass
    return set()


def check_dockerfile(ctx, path, app_name, report):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        report.err("structure", path, str(e))
        return None
    ins = dockerfile_instructions(text)
    args, stages = {}, []
    for n, word, rest in ins:
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip().strip('"')
        elif word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                           lambda m: args.get(m.group(1), m.group(0)), parts[0])
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"line": n, "image": image, "alias": alias, "ins": []})
        elif stages:
            stages[-1]["ins"].append((n, word, rest))
    if len(stages) < 2:
        report.err("dockerfile", path, "needs a build stage and a runtime stage")
        return None
    aliases = {s["alias"] for s in stages if s["alias"]}
    for s in stages:
        if s["image"] == "scratch" or s["image"] in aliases:
            continue
        problem = image_problem(s["image"])
        if problem:
            report.err("dockerfile", f"{path}:{s['line']}", f"FROM {problem}")
    build, final = stages[0], stages[-1]
    service = next((r.partition("=")[2].strip() for _, w, r in build["ins"]
                    if w == "ARG" and r.startswith("SERVICE=")), None)
    name = app_name or service
    if app_name and service != app_name:
        report.err("dockerfile", path, f"ARG SERVICE={service!r}, the file is {app_name!r}'s")
    if not (final["image"] == "scratch" or final["image"].startswith("gcr.io/distroless/")):
        report.err("dockerfile", f"{path}:{final['line']}",
                   f"runtime stage FROM {final['image']!r}: scratch or distroless only")
    if final["image"].startswith("gcr.io/distroless/") and "@sha256:" not in final["image"]:
        report.err("dockerfile", f"{path}:{final['line']}", "a distroless base is pinned by digest")
    words = [w for _, w, _ in final["ins"]]
    for n, w, r in final["ins"]:
        if w in ("RUN", "ADD") or (w in ("CMD", "ENTRYPOINT") and not r.startswith("[")):
            report.err("dockerfile", f"{path}:{n}", f"{w} {r[:40]!r} needs a shell or a "
                                                    f"download; the runtime stage has neither")
        if w == "COPY" and "--from=" not in r:
            report.err("dockerfile", f"{path}:{n}", "the runtime stage copies only from the "
                                                    "build stage")
    users = [r for _, w, r in final["ins"] if w == "USER"]
    uid = None
    m = re.match(r"^(\d+)(?::(\d+))?$", users[-1]) if users else None
    if not m or int(m.group(1)) == 0 or (m.group(2) is not None and int(m.group(2)) == 0):
        report.err("dockerfile", path, f"USER must be a numeric non-root uid:gid, got "
                                       f"{users[-1] if users else None!r}")
    else:
        uid = int(m.group(1))
    if "EXPOSE" not in words or not any(r.split("/")[0] == str(HEALTH_PORT)
                                        for _, w, r in final["ins"] if w == "EXPOSE"):
        report.err("dockerfile", path, f"EXPOSE {HEALTH_PORT} missing")
    entry = [r for _, w, r in final["ins"] if w == "ENTRYPOINT"]
    try:
        entry_argv = json.loads(entry[-1]) if entry else None
    except ValueError:
        entry_argv = None
    if not isinstance(entry_argv, list) or not entry_argv or \
            (name and entry_argv[0] != f"/usr/bin/{name}"):
        report.err("dockerfile", path, f"ENTRYPOINT must be [\"/usr/bin/{name}\"], got "
                                       f"{entry[-1] if entry else None!r}")
    build_text = " ".join(r for _, w, r in build["ins"] if w == "RUN")
    installed = set()
    for m in re.finditer(r"apt-get\s+install\s+([^;&|]*)", build_text):
        installed |= {w for w in m.group(1).split() if not w.startswith("-")}
    if "tools/image-deps.sh" in build_text or "image-deps.sh" in build_text:
        installed |= image_deps_replaces(ctx)
    missing = sorted(ctx.debian_build_deps - installed)
    if missing:
        report.err("dockerfile", path, f"the build stage does not install {', '.join(missing)} "
                                       f"(configure.ac requires them)")
    if "tools/image-contents.sh" not in build_text:
        report.err("dockerfile", path, "the build stage does not fill the image with "
                                       "tools/image-contents.sh")
    return uid


# ---------------------------------------------------------------- modes

def check_files(ctx, paths, report):
    """Dockerfiles one by one; YAML files of one directory as one app."""
    groups = {}
    for path in paths:
        if path.endswith("Dockerfile"):
            check_dockerfile(ctx, path, None, report)
        elif path.endswith(".json"):
            check_dashboard(ctx, path, report)
        else:
            groups.setdefault(os.path.dirname(os.path.abspath(path)), []).append(path)
    for group in groups.values():
        app = App(None)
        for path in group:
            run_yamllint(ctx, path, report)
            classify(app, load_docs(path, report), path)
        names = [get(d, "metadata", "name") for d, _, _ in app.objects
                 if d.get("kind") == "Deployment"]
        names += [get(d, "metadata", "name") for d, _, _ in app.flux]
        app.name = names[0] if names and isinstance(names[0], str) else None
        for doc, p, raw in app.flux:
            check_flux_ks(ctx, app, doc, raw, p, report)
        check_app_objects(ctx, app, report)


def check_tree(ctx, deploy, report):
    apps_dir = os.path.join(deploy, "kubernetes", "apps", NAMESPACE)
    if not os.path.isdir(apps_dir):
        report.err("structure", apps_dir, "missing")
        return
    # `make dist` writes v7 tar archives, which silently drop any path
    # longer than 99 characters.
    for top, _, files in os.walk(deploy):
        for f in files:
            rel = os.path.relpath(os.path.join(top, f), ctx.src)
            if not rel.startswith("..") and len(ctx.dist_prefix + rel) > 99:
                report.err("structure", rel, f"{ctx.dist_prefix}{rel} is longer than the 99 "
                                             f"characters `make dist` can store")
    names = sorted(n for n in os.listdir(apps_dir)
                   if os.path.isdir(os.path.join(apps_dir, n)))
    if not names:
        report.err("structure", apps_dir, "no apps")
    for f in sorted(os.listdir(apps_dir)):
        if f.endswith((".yaml", ".yml")):
            run_yamllint(ctx, os.path.join(apps_dir, f), report)
    ns_k = os.path.join(apps_dir, "kustomization.yaml")
    listed = []
    if not os.path.exists(ns_k):
        report.err("structure", ns_k, "missing (it lists every app's ks.yaml)")
    else:
        for doc, _ in load_docs(ns_k, report):
            if doc.get("namespace") is not None:
                report.err("structure", ns_k, "sets namespace:, which would move the ks.yaml "
                                              "objects out of flux-system")
            listed += [os.path.normpath(r) for r in doc.get("resources") or []]
    for r in listed:
        if not os.path.exists(os.path.join(apps_dir, r)):
            report.err("structure", ns_k, f"lists {r}, which does not exist")
    all_ids = {}
    for name in names:
        d = os.path.join(apps_dir, name)
        if not NAME_RE.match(name):
            report.err("structure", d, "app directory names are lowercase-hyphen")
        app = App(name)
        ks = os.path.join(d, "ks.yaml")
        if os.path.normpath(f"{name}/ks.yaml") not in listed:
            report.err("structure", ns_k, f"does not list ./{name}/ks.yaml")
        if not os.path.exists(ks):
            report.err("structure", d, "ks.yaml missing")
        else:
            run_yamllint(ctx, ks, report)
            classify(app, load_docs(ks, report), ks)
            if not app.flux or app.objects:
                report.err("ks", ks, "must hold exactly one Flux Kustomization")
                app.objects = []
            for doc, p, raw in app.flux:
                check_flux_ks(ctx, app, doc, raw, p, report)
        appdir = os.path.join(d, "app")
        kfile = os.path.join(appdir, "kustomization.yaml")
        if not os.path.exists(kfile):
            report.err("structure", appdir, "kustomization.yaml missing")
            continue
        run_yamllint(ctx, kfile, report)
        resources = []
        for doc, _ in load_docs(kfile, report):
            resources += [os.path.normpath(r) for r in doc.get("resources") or []]
        files = sorted(f for f in os.listdir(appdir)
                       if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")
        for f in files:
            if f not in resources:
                report.err("structure", kfile, f"does not list {f}, which Flux would not apply")
        for r in resources:
            rp = os.path.join(appdir, r)
            if not os.path.isfile(rp):
                report.err("structure", kfile, f"lists {r}, which does not exist")
                continue
            run_yamllint(ctx, rp, report)
            classify(app, load_docs(rp, report), rp)
        for doc, p, raw in list(app.flux):
            if p != ks:
                report.err("structure", p, "a Flux Kustomization belongs in ks.yaml")
        for doc, p, _ in app.objects:
            key = (doc.get("kind"), get(doc, "metadata", "name"))
            if key in all_ids and doc.get("kind") != "Kustomization":
                report.err("structure", p, f"{key[0]}/{key[1]} is also defined in {all_ids[key]}")
            all_ids.setdefault(key, p)
        if not app.of_kind("Deployment"):
            report.err("structure", appdir, "no Deployment")
        if not app.of_kind("ServiceMonitor") and not app.of_kind("PodMonitor"):
            report.err("structure", appdir, "no ServiceMonitor or PodMonitor (Prometheus "
                                            "would not scrape /metrics)")
        uids = check_app_objects(ctx, app, report)
        dockerfile = os.path.join(deploy, "docker", f"{name}.Dockerfile")
        if not os.path.exists(dockerfile):
            report.err("structure", dockerfile, f"missing (the image of {name})")
        else:
            image_uid = check_dockerfile(ctx, dockerfile, name, report)
            if image_uid is not None and uids and uids != {image_uid}:
                report.err("security", dockerfile, f"the image runs as {image_uid}, the pod "
                                                   f"as {sorted(uids)}")
    check_grafana(ctx, deploy, report)
    # Every Dockerfile belongs to an app.
    docker_dir = os.path.join(deploy, "docker")
    if os.path.isdir(docker_dir):
        for f in sorted(os.listdir(docker_dir)):
            if f.endswith(".Dockerfile") and f[:-len(".Dockerfile")] not in names:
                report.err("structure", os.path.join(docker_dir, f), "no app of that name")


def expected_rules(path):
    """The rules a bad fixture must be rejected for: its '# expect:' line."""
    target = os.path.join(path, "EXPECT") if os.path.isdir(path) else path
    if target.endswith(".json"):  # no comments in JSON: the description says it
        with open(target, encoding="utf-8") as f:
            m = re.search(r'"description":\s*"# expect:\s*([^"#]+?)(?: - [^"]*)?"', f.read())
        return {r.strip() for r in m.group(1).split(",") if r.strip()} if m else set()
    with open(target, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^#\s*expect:\s*(.+)$", line.strip())
            if m:
                return {r.strip() for r in m.group(1).split(",") if r.strip()}
    return set()


def self_test(ctx, fixtures):
    failures, covered, count = [], set(), 0
    for f in sorted(os.listdir(fixtures)):
        if not f.startswith(("bad-", "good-")):
            continue
        path = os.path.join(fixtures, f)
        count += 1
        report = Report()
        if os.path.isdir(path):
            check_tree(ctx, path, report)
        else:
            check_files(ctx, [path], report)
        got = report.rules()
        if f.startswith("good-"):
            if got:
                failures.append(f"{f}: a good fixture was rejected:")
                failures += [f"    {r}: {w}: {m}" for r, w, m in report.errors]
            else:
                print(f"ok   {f}: accepted")
            continue
        want = expected_rules(path)
        unknown = want - set(RULES)
        if not want or unknown:
            failures.append(f"{f}: '# expect:' names no rule or unknown rules {sorted(unknown)}")
            continue
        covered |= want
        if got == want:
            first = next(e for e in report.errors)
            print(f"ok   {f}: rejected for {', '.join(sorted(got))} "
                  f"(first: {first[0]}: {first[2]})")
        else:
            failures.append(f"{f}: expected rejection for {sorted(want)}, got {sorted(got)}:")
            failures += [f"    {r}: {w}: {m}" for r, w, m in report.errors]
    missing = sorted(set(RULES) - covered)
    if missing:
        failures.append(f"rules without a bad fixture (the checker is not shown able to "
                        f"fail on them): {', '.join(missing)}")
    for line in failures:
        print(f"FAIL {line}")
    print(f"self-test: {count} fixtures, {len(covered)}/{len(RULES)} rules exercised, "
          f"{'FAILED' if failures else 'passed'}")
    return not failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="the source tree")
    ap.add_argument("--yamllint", default="yamllint", help="the yamllint command")
    ap.add_argument("--tree", help="a deploy tree to check")
    ap.add_argument("--self-test", dest="self_test", help="the fixtures directory")
    ap.add_argument("files", nargs="*")
    opts = ap.parse_args()
    ctx = Context(opts.src, opts.yamllint.split())
    ok = True
    if opts.self_test:
        ok = self_test(ctx, opts.self_test) and ok
    if opts.tree or opts.files:
        report = Report()
        if opts.tree:
            check_tree(ctx, opts.tree, report)
        if opts.files:
            check_files(ctx, opts.files, report)
        report.print()
        ok = ok and not report.errors
        if not report.errors:
            print(f"check-manifests: {opts.tree or ' '.join(opts.files)}: all rules pass")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
