#!/usr/bin/env python3
"""A fake Kubeflow Pipelines API server (v2beta1 REST) for libaiplat's
tests. Standard library only; see pipeline_fake_base.py for the control API
and docs/decisions/0012-pipeline-engines.md for the shapes and their sources.

What it serves, as the KFP API server (backend/src/apiserver) does through
grpc-gateway with protojson (proto field names, unset fields omitted):

  GET  /apis/v2beta1/healthz
  GET  /apis/v2beta1/pipelines[?filter=&page_size=]  -> ListPipelinesResponse
  GET  /apis/v2beta1/pipelines/names/{name}          -> Pipeline
  GET  /apis/v2beta1/pipelines/{pipeline_id}          -> Pipeline
  GET  /apis/v2beta1/pipelines/{pipeline_id}/versions[?filter=]
                                                      -> ListPipelineVersionsResponse
  GET  /apis/v2beta1/pipelines/{pipeline_id}/versions/{version_id}
                                                      -> PipelineVersion
  POST /apis/v2beta1/runs                             -> Run
  GET  /apis/v2beta1/runs/{run_id}                    -> Run

Errors are google.rpc.Status: {"code":5,"message":"<wrapped internal
chain>","details":[{"@type":"type.googleapis.com/google.rpc.Status",
"code":5,"message":"<user-facing message>"}]}; with --gateway v1 (KFP
2.0-2.5, grpc-gateway v1 DefaultHTTPError) an "error" key repeats the
message. Unknown routes: v2 404 {"code":5,"message":"Not Found"}; v1 404
text/plain "Not Found".

Pipelines: --pipeline NAME[:OUTCOME], OUTCOME one of SUCCEEDED (default),
FAILED, CANCELED, SKIPPED; each has one version named after it (as an
upload makes it). --version PIPELINE:VERSION[:OUTCOME] adds a version,
newer than the ones before (the latest is what a run without a version
id gets); its outcome, when given, is the one of its runs. A run parameter named
"outcome" (--outcome-param) with one of those values overrides it. A new run
is PENDING; each GET (or each --step-ms) moves it on: PENDING, RUNNING
(--running-steps times), then its outcome (CANCELED after CANCELING,
SKIPPED straight from PENDING).

--token models authentication (multi-user mode's token review, or an
authenticating proxy): a request without "Authorization: Bearer TOKEN"
gets 401 Unauthenticated. Namespaces are otherwise ignored, as in
single-user mode.
"""

import json
import sys
import time
import urllib.parse
import uuid

import pipeline_fake_base as base

OUTCOMES = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
STATUS_TYPE = "type.googleapis.com/google.rpc.Status"
EPOCH = "1970-01-01T00:00:00Z"

# Field names protojson accepts for each message (proto name and JSON name).
RUN_FIELDS = {
    "experiment_id", "run_id", "display_name", "storage_state", "description",
    "pipeline_version_id", "pipeline_spec", "runtime_config",
    "service_account", "created_at", "scheduled_at", "finished_at", "state",
    "error", "run_details", "recurring_run_id", "state_history",
    "pipeline_version_reference", "plugins_input", "plugins_output",
}
CONFIG_FIELDS = {"parameters", "pipeline_root"}
REF_FIELDS = {"pipeline_id", "pipeline_version_id"}
SOURCES = ("pipeline_version_id", "pipeline_spec", "pipeline_version_reference")


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def canon(obj, fields, raw):
    """Map JSON names to proto names; return (dict, unknown-field error)."""
    out = {}
    names = {f: f for f in fields}
    names.update({camel(f): f for f in fields})
    for k, v in obj.items():
        if k not in names:
            return None, unknown_field(raw, k)
        out[names[k]] = v
    return out, None


def unknown_field(raw, key):
    col = raw.find('"%s"' % key) + 1
    return 'proto: (line 1:%d): unknown field "%s"' % (max(col, 1), key)


def fake_id(kind, name):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "kfp-fake/%s/%s" % (kind, name)))


class Kfp:
    name = "kfp_fake"

    def __init__(self, args):
        self.args = args
        self.pipelines = {}  # id -> {"obj", "outcome", "version"}
        self.runs = {}  # id -> {"obj", "progress", "state"}
        self.experiment = fake_id("experiment", "Default")
        for spec in args.pipeline or []:
            self.add_pipeline(spec)
        for spec in args.version or []:
            self.add_version(spec)

    def add_pipeline(self, spec):
        name, _, outcome = spec.partition(":")
        outcome = outcome or "SUCCEEDED"
        if outcome not in OUTCOMES:
            raise SystemExit("kfp_fake: outcome %r is not one of %s"
                             % (outcome, ", ".join(OUTCOMES)))
        pid = fake_id("pipeline", name)
        self.pipelines[pid] = {
            "outcome": outcome,
            "versions": [],
            "obj": {
                "pipeline_id": pid,
                "display_name": name,
                "name": name,
                "created_at": base.rfc3339(time.time()),
            },
        }

        self.add_version("%s:%s" % (name, name))

    def add_version(self, spec):
        pname, _, rest = spec.partition(":")
        vname, _, outcome = rest.partition(":")
        p = next((p for p in self.pipelines.values()
                  if p["obj"]["name"] == pname), None)
        if p is None or not vname or (outcome and outcome not in OUTCOMES):
            raise SystemExit("kfp_fake: bad --version %r" % spec)
        pid = p["obj"]["pipeline_id"]
        p["versions"].append({
            "outcome": outcome or None,
            "obj": {
                "pipeline_id": pid,
                "pipeline_version_id": fake_id("version", pname + "/" + vname),
                "display_name": vname,
                "name": vname,
                "created_at": base.rfc3339(time.time()),
                "package_url": {"pipeline_url": ""},
                "pipeline_spec": {"pipelineInfo": {"name": pname}},
            }})

    def version_by_id(self, vid):
        for p in self.pipelines.values():
            for v in p["versions"]:
                if v["obj"]["pipeline_version_id"] == vid:
                    return p, v
        return None, None

    # ---- wire format -----------------------------------------------------

    def error_body(self, code, message, detail=None):
        body = {}
        if self.args.gateway == "v1":
            body["error"] = message
        if code:
            body["code"] = code
        if message:
            body["message"] = message
        if detail is not None:
            d = {"@type": STATUS_TYPE}
            if code:
                d["code"] = code
            if detail:
                d["message"] = detail
            body["details"] = [d]
        return body

    def fault_message(self, code):
        return {13: "Internal error: injected fault",
                14: "Failed to create a workflow - try again later",
                4: "context deadline exceeded",
                8: "too many requests"}.get(code, "injected error")

    def fault_detail(self, code):
        return {13: "Internal Server Error"}.get(code, "")

    def snapshot(self):
        return {"runs": [r["obj"] for r in self.runs.values()],
                "pipelines": [p["obj"] for p in self.pipelines.values()]}

    def user_error(self, h, code, chain, external):
        """A KFP UserError: the wrapped internal chain as the message, the
        external message in a google.rpc.Status detail."""
        extra = None
        if code == 16 and self.args.gateway == "v2":
            extra = {"WWW-Authenticate": chain}
        h.reply(base.GRPC_TO_HTTP[code],
                base.go_json(self.error_body(code, chain, external)),
                extra_headers=dict({"Grpc-Metadata-Content-Type":
                                    "application/grpc"}, **(extra or {})))

    # ---- routing ---------------------------------------------------------

    def handle(self, h, method, seg, query, body):
        route = None
        if seg[:2] == ["apis", "v2beta1"]:
            rest = seg[2:]
            if method == "GET" and rest == ["healthz"]:
                route = self.healthz
            elif method == "GET" and rest == ["pipelines"]:
                route = self.list_pipelines
            elif method == "GET" and len(rest) == 3 and rest[:2] == [
                    "pipelines", "names"]:
                route = self.pipeline_by_name
            elif method == "GET" and len(rest) == 2 and rest[0] == "pipelines":
                route = self.get_pipeline
            elif method == "GET" and len(rest) == 3 and \
                    rest[0] == "pipelines" and rest[2] == "versions":
                route = self.list_versions
            elif method == "GET" and len(rest) == 4 and \
                    rest[0] == "pipelines" and rest[2] == "versions":
                route = self.get_version
            elif method == "POST" and rest == ["runs"]:
                route = self.create_run
            elif method == "GET" and len(rest) == 2 and rest[0] == "runs":
                route = self.get_run
        if route is None:
            if self.args.gateway == "v1":
                h.reply(404, "Not Found\n", "text/plain; charset=utf-8",
                        {"X-Content-Type-Options": "nosniff"})
            else:
                h.reply_error(5, "Not Found", grpc_metadata=False)
            return
        req = None
        if method == "POST":
            raw = body.decode("utf-8", "replace")
            try:
                req = json.loads(raw or "{}")
                if not isinstance(req, dict):
                    raise ValueError
            except ValueError:
                h.reply_error(3, "proto: syntax error (line 1:1): invalid "
                              "value %s" % raw[:20], grpc_metadata=False)
                return
            req = (req, raw)
        if route != self.healthz and self.args.token and \
                not base.bearer_ok(h, self.args.token):
            ext = ("Failed to check authorization. User identity is empty in "
                   "the request header")
            self.user_error(
                h, 16, "Failed to authorize the request: Unauthenticated: %s: "
                "[Unauthenticated: Review.Status.Authenticated is false. "
                "Error : Failed to authenticate token review]" % ext, ext)
            return
        with h.server.lock:
            route(h, seg[2:], query, req)

    # ---- endpoints -------------------------------------------------------

    def healthz(self, h, rest, query, req):
        h.reply_json(200, {"commit_sha": "0000000", "tag_name": "fake",
                           "multi_user": False})

    def list_pipelines(self, h, rest, query, req):
        items = sorted((p["obj"] for p in self.pipelines.values()),
                       key=lambda o: o["display_name"])
        flt = query.get("filter", [""])[0]
        if flt:
            try:
                preds = json.loads(flt).get("predicates", [])
                for pr in preds:
                    key = pr.get("key")
                    op = pr.get("operation", pr.get("op"))
                    val = pr.get("string_value", pr.get("stringValue"))
                    if key not in ("name", "display_name") or op != "EQUALS":
                        raise ValueError("fake supports EQUALS on name only")
                    items = [o for o in items if o.get(key) == val]
            except (ValueError, AttributeError) as e:
                self.user_error(h, 3, "Failed to list pipelines: Invalid input "
                                "error: %s" % e, str(e))
                return
        out = {"total_size": len(items)} if items else {}
        if items:
            out = {"pipelines": items, "total_size": len(items)}
        h.reply_json(200, out)

    def pipeline_by_name(self, h, rest, query, req):
        name = rest[2]
        ns = ""  # single-user mode: ReplaceNamespace drops it
        for p in self.pipelines.values():
            if p["obj"]["name"] == name:
                h.reply_json(200, p["obj"])
                return
        ext = "Namespace/Pipeline %s/%s not found" % (ns, name)
        self.user_error(
            h, 5, "Failed to get a pipeline with name %s and namespace %s. "
            "Check error stack.: Failed to get a pipeline named %s in "
            "namespace %s: ResourceNotFoundError: %s" % (name, ns, name, ns,
                                                         ext), ext)

    def get_pipeline(self, h, rest, query, req):
        pid = rest[1]
        p = self.pipelines.get(pid)
        if p is None:
            ext = "Pipeline %s not found" % pid
            self.user_error(
                h, 5, "Failed to get a pipeline %s. Check error stack: Failed "
                "to get a pipeline with id %s: ResourceNotFoundError: %s"
                % (pid, pid, ext), ext)
            return
        h.reply_json(200, p["obj"])

    def list_versions(self, h, rest, query, req):
        """ListPipelineVersions (pipeline_server.go): the filter is
        url-decoded once more and read with jsonpb, so both proto and JSON
        names work; "name" is the v1beta1 key of the Name column,
        "display_name" the v2beta1 key of DisplayName (model/
        pipeline_version.go APIToModelFieldMap). Newest last, as the
        default sort by created_at gives them."""
        pid = rest[1]
        p = self.pipelines.get(pid)
        if p is None:
            ext = "Pipeline %s not found" % pid
            self.user_error(
                h, 5, "Failed to list pipeline versions: Failed to get "
                "pipeline %s: ResourceNotFoundError: %s" % (pid, ext), ext)
            return
        items = [v["obj"] for v in p["versions"]]
        flt = query.get("filter", [""])[0]
        if flt:
            try:
                preds = json.loads(urllib.parse.unquote_plus(flt)).get(
                    "predicates", [])
                for pr in preds:
                    key = pr.get("key")
                    op = pr.get("operation", pr.get("op"))
                    val = pr.get("string_value", pr.get("stringValue"))
                    if key not in ("name", "display_name") or op != "EQUALS":
                        raise ValueError("fake supports EQUALS on name only")
                    items = [o for o in items if o.get(key) == val]
            except (ValueError, AttributeError) as e:
                self.user_error(h, 3, "Failed to list pipeline versions: "
                                "Invalid input error: failed to parse valid "
                                "filter from %r: %s" % (flt, e), str(e))
                return
        out = {}
        if items:
            out = {"pipeline_versions": items, "total_size": len(items)}
        h.reply_json(200, out)

    def get_version(self, h, rest, query, req):
        """GetPipelineVersion: looked up by the version id alone (the
        pipeline id of the path is not compared)."""
        vid = rest[3]
        _, v = self.version_by_id(vid)
        if v is None:
            ext = "PipelineVersion %s not found" % vid
            self.user_error(
                h, 5, "Failed to get a pipeline version: Failed to get a "
                "pipeline version with id %s: ResourceNotFoundError: %s"
                % (vid, ext), ext)
            return
        h.reply_json(200, v["obj"])

    def create_run(self, h, rest, query, reqraw):
        obj, raw = reqraw
        run, err = canon(obj, RUN_FIELDS, raw)
        if err:
            h.reply_error(3, err, grpc_metadata=False)
            return
        sources = [s for s in SOURCES if run.get(s) not in (None, "")]
        if len(sources) > 1:
            h.reply_error(3, 'proto: (line 1:%d): error parsing "%s", oneof '
                          "kubeflow.pipelines.backend.api.v2beta1.Run."
                          "pipeline_source is already set"
                          % (raw.find('"%s"' % sources[1]) + 1, sources[1]),
                          grpc_metadata=False)
            return
        cfg, err = canon(run.get("runtime_config") or {}, CONFIG_FIELDS, raw)
        if err:
            h.reply_error(3, err, grpc_metadata=False)
            return
        ref, err = canon(run.get("pipeline_version_reference") or {},
                         REF_FIELDS, raw)
        if err:
            h.reply_error(3, err, grpc_metadata=False)
            return
        if not run.get("display_name"):
            ext = "The run name is empty. Please specify a valid name"
            self.user_error(h, 3, "Failed to create a new run: Failed to "
                            "create a run due to invalid name: Invalid input "
                            "error: " + ext, ext)
            return
        exp = run.get("experiment_id") or self.experiment
        if exp != self.experiment:
            ext = "Experiment %s not found" % exp
            self.user_error(
                h, 5, "Failed to create a new run: Failed to create a run due "
                "to invalid experimentId and namespace combination: Failed to "
                "fetch namespace for experiment %s: Failed to fetch namespace "
                "from experiment %s: ResourceNotFoundError: %s"
                % (exp, exp, ext), ext)
            return
        pid = ref.get("pipeline_id", "")
        vid = ref.get("pipeline_version_id", "") or \
            run.get("pipeline_version_id", "")
        pipeline = self.pipelines.get(pid) if pid else None
        version = pipeline["versions"][-1] if pipeline else None
        if vid:
            pipeline, version = self.version_by_id(vid)
        chain = None
        if run.get("pipeline_spec"):
            pipeline = None
        elif vid and pipeline is None:
            chain = ("Failed to fetch a pipeline version and its manifest from "
                     "pipeline version %s: ResourceNotFoundError: "
                     "PipelineVersion %s not found" % (vid, vid))
        elif vid and pid and pipeline["obj"]["pipeline_id"] != pid:
            chain = ("Invalid input error: Pipeline version %s belongs to "
                     "pipeline %s (not %s)" % (vid, pipeline["obj"]
                                              ["pipeline_id"], pid))
        elif not vid and pid and pipeline is None:
            chain = ("Failed to fetch a pipeline version and its manifest from "
                     "pipeline %s: Failed to get the latest pipeline version "
                     "as pipeline was not found: ResourceNotFoundError: "
                     "Pipeline %s not found" % (pid, pid))
        elif not vid and not pid:
            chain = ("Invalid input error: Failed to fetch a template with an "
                     "empty pipeline spec manifest")
        if chain:
            # CreateRun turns every template-fetching failure into an
            # InternalServerError (resource_manager.go CreateRun).
            self.user_error(
                h, 13, "Failed to create a new run: InternalServerError: "
                "Failed to create a run due to error fetching manifest: "
                "Failed to fetch a template due to error retrieving pipeline "
                "version: " + chain, "Internal Server Error")
            return
        now = time.time()
        run_id = str(uuid.uuid4())
        out = {"experiment_id": exp, "run_id": run_id,
               "display_name": run["display_name"],
               "storage_state": "AVAILABLE"}
        if run.get("description"):
            out["description"] = run["description"]
        if pipeline is not None:
            out["pipeline_version_reference"] = {
                "pipeline_id": pipeline["obj"]["pipeline_id"],
                "pipeline_version_id":
                    version["obj"]["pipeline_version_id"]}
        else:
            out["pipeline_spec"] = run["pipeline_spec"]
        rc = {}
        if cfg.get("parameters"):
            rc["parameters"] = cfg["parameters"]
        if cfg.get("pipeline_root"):
            rc["pipeline_root"] = cfg["pipeline_root"]
        out["runtime_config"] = rc
        out["service_account"] = run.get("service_account") or \
            "pipeline-runner"
        out["created_at"] = base.rfc3339(now)
        out["scheduled_at"] = base.rfc3339(now)
        out["finished_at"] = EPOCH
        out["state"] = "PENDING"
        out["run_details"] = {}
        out["state_history"] = [{"update_time": base.rfc3339(now),
                                 "state": "PENDING"}]
        outcome = pipeline["outcome"] if pipeline else "SUCCEEDED"
        if version and version["outcome"]:
            outcome = version["outcome"]
        params = cfg.get("parameters") or {}
        if params.get(self.args.outcome_param) in OUTCOMES:
            outcome = params[self.args.outcome_param]
        running = ["RUNNING"] * max(1, self.args.running_steps)
        steps = {"SKIPPED": ["PENDING", "PENDING", "SKIPPED"],
                 "CANCELED": ["PENDING", "PENDING"] + running +
                 ["CANCELING", "CANCELED"]}.get(
                     outcome, ["PENDING", "PENDING"] + running + [outcome])
        self.runs[run_id] = {
            "obj": out, "state": "PENDING",
            "progress": base.Progress(steps, self.args.advance,
                                      self.args.step_ms)}
        h.reply_json(200, out)

    def get_run(self, h, rest, query, req):
        rid = rest[1]
        r = self.runs.get(rid)
        if r is None:
            ext = "Run %s not found" % rid
            self.user_error(h, 5, "Failed to get a run: Failed to fetch run "
                            "%s: ResourceNotFoundError: %s" % (rid, ext), ext)
            return
        state = r["progress"].on_poll()
        if state != r["state"]:
            r["state"] = state
            obj = r["obj"]
            now = base.rfc3339(time.time())
            obj["state"] = state
            entry = {"update_time": now, "state": state}
            if state == "FAILED" and self.args.failed_message:
                entry["error"] = {"code": 2,
                                  "message": self.args.failed_message}
            obj["state_history"].append(entry)
            if state in TERMINAL:
                obj["finished_at"] = now
        h.reply_json(200, r["obj"])


def main(argv):
    p = base.common_args("fake Kubeflow Pipelines API server for tests")
    p.add_argument("--pipeline", action="append",
                   help="NAME[:SUCCEEDED|FAILED|CANCELED|SKIPPED]")
    p.add_argument("--version", action="append",
                   help="PIPELINE:VERSION[:OUTCOME], a newer version")
    p.add_argument("--outcome-param", default="outcome",
                   help="run parameter that selects a run's final state")
    p.add_argument("--gateway", choices=("v1", "v2"), default="v2",
                   help="error bodies of grpc-gateway v1 (KFP 2.0-2.5) or v2")
    p.add_argument("--failed-message", default=None,
                   help="error message recorded with a FAILED state")
    args = p.parse_args(argv)
    base.serve(Kfp(args), args)


if __name__ == "__main__":
    main(sys.argv[1:])
