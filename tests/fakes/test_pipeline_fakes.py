#!/usr/bin/env python3
"""Checks that the Argo and Kubeflow Pipelines fakes speak the shapes
recorded in docs/decisions/0012-pipeline-engines.md: status codes, error
bodies, content types, field names, phase progressions, auth and faults.
Each fake runs as its own process, as the C tests run it."""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                     r"[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Fake:
    def __init__(self, script, *args):
        self.dir = tempfile.mkdtemp(prefix="aiplat-fake-")
        port_file = os.path.join(self.dir, "port")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, script), "--port-file",
             port_file] + list(args),
            stdout=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("%s did not start" % script)
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def call(self, method, path, body=None, token=None, raw=None,
             timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + token
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, resp.getheader("Content-Type"), payload, resp
        finally:
            conn.close()

    def json(self, method, path, body=None, token=None):
        status, ctype, payload, _ = self.call(method, path, body, token)
        return status, ctype, json.loads(payload)

    def fault(self, **spec):
        self.call("POST", "/_fake/fault", spec)

    def requests(self):
        return self.json("GET", "/_fake/requests")[2]["requests"]


TOKEN = "s3cret-token"


class ArgoFakeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake("argo_fake.py", "--token", TOKEN,
                        "--template", "train", "--template", "ai-ml/broken:Failed",
                        "--template", "ai-ml/crash:Error",
                        "--template", "other/train")

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.call("POST", "/_fake/reset", {})

    def submit(self, template, params=None, ns="ai-ml", token=TOKEN, **opts):
        opts = dict(opts)
        if params is not None:
            opts["parameters"] = params
        body = {"namespace": ns, "resourceKind": "WorkflowTemplate",
                "resourceName": template, "submitOptions": opts}
        return self.fake.json("POST", "/api/v1/workflows/%s/submit" % ns,
                              body, token)

    def poll(self, name, ns="ai-ml"):
        return self.fake.json("GET", "/api/v1/workflows/%s/%s" % (ns, name),
                              token=TOKEN)

    def test_submit_returns_workflow_without_phase(self):
        status, ctype, wf = self.submit("train", ["epochs=3", "lr=0.1"])
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "application/json")
        meta = wf["metadata"]
        self.assertRegex(meta["name"], r"^train-[bcdfghjklmnpqrstvwxz2456789]{5}$")
        self.assertEqual(meta["generateName"], "train-")
        self.assertEqual(meta["namespace"], "ai-ml")
        self.assertRegex(meta["uid"], UUID_RE)
        self.assertEqual(
            meta["labels"]["workflows.argoproj.io/workflow-template"], "train")
        self.assertEqual(wf["spec"]["workflowTemplateRef"], {"name": "train"})
        self.assertEqual(wf["spec"]["arguments"]["parameters"],
                         [{"name": "epochs", "value": "3"},
                          {"name": "lr", "value": "0.1"}])
        self.assertNotIn("phase", wf["status"])
        self.assertIsNone(wf["status"]["startedAt"])
        self.assertIsNone(wf["status"]["finishedAt"])

    def test_phases_to_succeeded(self):
        _, _, wf = self.submit("train")
        name = wf["metadata"]["name"]
        phases = [self.poll(name)[2]["status"]["phase"] for _ in range(4)]
        self.assertEqual(phases, ["Pending", "Running", "Succeeded",
                                  "Succeeded"])
        st = self.poll(name)[2]["status"]
        self.assertRegex(st["startedAt"], TIME_RE)
        self.assertRegex(st["finishedAt"], TIME_RE)
        self.assertNotIn("message", st)

    def test_failed_and_error_templates_carry_a_message(self):
        for tmpl, phase in (("broken", "Failed"), ("crash", "Error")):
            name = self.submit(tmpl)[2]["metadata"]["name"]
            for _ in range(3):
                self.poll(name)
            st = self.poll(name)[2]["status"]
            self.assertEqual(st["phase"], phase)
            self.assertTrue(st["message"])

    def test_outcome_parameter_overrides_template(self):
        name = self.submit("train", ["outcome=Error"])[2]["metadata"]["name"]
        for _ in range(3):
            st = self.poll(name)[2]["status"]
        self.assertEqual(st["phase"], "Error")

    def test_fields_filter(self):
        name = self.submit("train")[2]["metadata"]["name"]
        _, _, wf = self.fake.json(
            "GET", "/api/v1/workflows/ai-ml/%s?fields=metadata.name,"
            "status.phase" % name, token=TOKEN)
        self.assertEqual(wf, {"metadata": {"name": name},
                              "status": {"phase": "Pending"}})

    def test_namespaces_are_separate(self):
        self.assertEqual(self.submit("train", ns="other")[0], 200)
        status, _, body = self.submit("broken", ns="other")
        self.assertEqual(status, 404)

    def test_missing_template(self):
        status, ctype, body = self.submit("nope")
        self.assertEqual(status, 404)
        self.assertEqual(ctype, "application/json")
        self.assertEqual(body, {"code": 5, "message":
                                'workflowtemplates.argoproj.io "nope" not found'})
        status, _, body = self.fake.json(
            "GET", "/api/v1/workflow-templates/ai-ml/nope", token=TOKEN)
        self.assertEqual((status, body["code"]), (404, 5))
        status, _, body = self.fake.json(
            "GET", "/api/v1/workflow-templates/ai-ml/train", token=TOKEN)
        self.assertEqual((status, body["metadata"]["name"]), (200, "train"))

    def test_missing_workflow(self):
        status, _, body = self.poll("train-zzzzz")
        self.assertEqual(status, 404)
        self.assertEqual(body, {"code": 5, "message":
                                'workflows.argoproj.io "train-zzzzz" not found'})

    def test_auth(self):
        status, _, body = self.submit("train", token="wrong")
        self.assertEqual((status, body), (401, {"code": 16,
                                                "message": "Unauthorized"}))
        status, _, body = self.submit("train", token=None)
        self.assertEqual(status, 401)
        self.assertEqual(body["code"], 16)
        self.assertTrue(body["message"].startswith("token not valid"))

    def test_bad_requests(self):
        status, _, body = self.submit("train", ["novalue"])
        self.assertEqual((status, body["code"]), (500, 13))
        self.assertIn("expected parameter of the form: NAME=VALUE", body["message"])
        status, _, payload, _ = self.fake.call(
            "POST", "/api/v1/workflows/ai-ml/submit", raw=b"garbage",
            token=TOKEN)
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(payload)["code"], 3)
        status, _, body = self.fake.json(
            "POST", "/api/v1/workflows/ai-ml/submit",
            {"resourceKind": "Pod", "resourceName": "x"}, TOKEN)
        self.assertEqual((status, body["code"]), (400, 3))
        status, _, body = self.fake.json("GET", "/api/v1/nothing", token=TOKEN)
        self.assertEqual((status, body), (501, {"code": 12,
                                                "message": "Not Implemented"}))

    def test_name_conflict(self):
        self.assertEqual(self.submit("train", name="fixed-1")[0], 200)
        status, _, body = self.submit("train", name="fixed-1")
        self.assertEqual((status, body["code"]), (409, 6))

    def test_records_requests(self):
        self.submit("train", ["k=a=b", "q=\"quoted\" \u00e9\n"])
        req = self.fake.requests()[-1]
        self.assertEqual(req["method"], "POST")
        self.assertEqual(req["path"], "/api/v1/workflows/ai-ml/submit")
        self.assertEqual(req["headers"]["authorization"], "Bearer " + TOKEN)
        sent = json.loads(req["body"])
        self.assertEqual(sent["submitOptions"]["parameters"],
                         ["k=a=b", "q=\"quoted\" \u00e9\n"])

    def test_faults(self):
        self.fake.fault(kind="status", status=500, count=2)
        for _ in range(2):
            status, _, body = self.submit("train")
            self.assertEqual((status, body["code"]), (500, 13))
        self.assertEqual(self.submit("train")[0], 200)
        self.fake.fault(kind="status", status=503)
        status, _, body = self.submit("train")
        self.assertEqual((status, body["code"]), (503, 14))
        self.fake.fault(kind="garbage")
        status, ctype, payload, _ = self.fake.call(
            "GET", "/api/v1/workflows/ai-ml/x", token=TOKEN)
        self.assertEqual((status, ctype), (200, "application/json"))
        self.assertRaises(ValueError, json.loads, payload)
        self.fake.fault(kind="slow", delay_ms=1500)
        self.assertRaises(socket.timeout, self.fake.call, "GET",
                          "/api/v1/workflows/ai-ml/x", None, TOKEN, None, 0.3)
        self.fake.fault(kind="drop")
        self.assertRaises((http.client.HTTPException, ConnectionError),
                          self.fake.call, "GET", "/api/v1/workflows/ai-ml/x",
                          None, TOKEN)

    def test_fault_filters_by_method_and_path(self):
        self.fake.fault(kind="status", status=500, method="GET",
                        path="/api/v1/workflows/ai-ml/", count=-1)
        self.assertEqual(self.submit("train")[0], 200)
        self.assertEqual(self.poll("x")[0], 500)
        self.assertEqual(self.poll("y")[0], 500)


class ArgoTimeModeTest(unittest.TestCase):
    def test_phases_follow_time(self):
        fake = Fake("argo_fake.py", "--template", "train", "--advance", "time",
                    "--step-ms", "50")
        try:
            _, _, wf = fake.json("POST", "/api/v1/workflows/ai-ml/submit", {
                "resourceKind": "WorkflowTemplate", "resourceName": "train"})
            time.sleep(0.5)
            _, _, wf = fake.json("GET", "/api/v1/workflows/ai-ml/%s"
                                 % wf["metadata"]["name"])
            self.assertEqual(wf["status"]["phase"], "Succeeded")
        finally:
            fake.stop()


class ArgoInformerTest(unittest.TestCase):
    def test_v37_not_found_message(self):
        fake = Fake("argo_fake.py", "--informer")
        try:
            status, _, body = fake.json(
                "POST", "/api/v1/workflows/ai-ml/submit",
                {"resourceKind": "WorkflowTemplate", "resourceName": "x"})
            self.assertEqual((status, body), (404, {
                "code": 5,
                "message": 'workflowtemplate.argoproj.io "x" not found'}))
        finally:
            fake.stop()


class KfpFakeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake("kfp_fake.py", "--token", TOKEN, "--pipeline", "train",
                        "--pipeline", "broken:FAILED", "--pipeline",
                        "stopped:CANCELED", "--pipeline", "cached:SKIPPED",
                        "--failed-message", "task train failed")

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def pipeline_id(self, name):
        status, _, p = self.fake.json(
            "GET", "/apis/v2beta1/pipelines/names/" + name, token=TOKEN)
        self.assertEqual(status, 200)
        return p["pipeline_id"]

    def create(self, name, params=None, **extra):
        body = {"display_name": "run of " + name,
                "pipeline_version_reference": {"pipeline_id":
                                               self.pipeline_id(name)},
                "runtime_config": {"parameters": params or {}}}
        body.update(extra)
        return self.fake.json("POST", "/apis/v2beta1/runs", body, TOKEN)

    def states(self, run_id, n):
        return [self.fake.json("GET", "/apis/v2beta1/runs/" + run_id,
                               token=TOKEN)[2]["state"] for _ in range(n)]

    def test_pipeline_lookup(self):
        status, ctype, p = self.fake.json(
            "GET", "/apis/v2beta1/pipelines/names/train", token=TOKEN)
        self.assertEqual((status, ctype), (200, "application/json"))
        self.assertRegex(p["pipeline_id"], UUID_RE)
        self.assertEqual((p["name"], p["display_name"]), ("train", "train"))
        self.assertRegex(p["created_at"], TIME_RE)
        status, _, same = self.fake.json(
            "GET", "/apis/v2beta1/pipelines/" + p["pipeline_id"], token=TOKEN)
        self.assertEqual((status, same), (200, p))
        status, _, lst = self.fake.json(
            "GET", '/apis/v2beta1/pipelines?filter=%7B%22predicates%22%3A%5B'
            '%7B%22key%22%3A%22name%22%2C%22operation%22%3A%22EQUALS%22%2C%22'
            'string_value%22%3A%22train%22%7D%5D%7D', token=TOKEN)
        self.assertEqual((status, lst), (200, {"pipelines": [p],
                                               "total_size": 1}))

    def test_pipeline_not_found(self):
        status, _, body = self.fake.json(
            "GET", "/apis/v2beta1/pipelines/names/nope", token=TOKEN)
        self.assertEqual(status, 404)
        self.assertEqual(set(body), {"code", "message", "details"})
        self.assertEqual(body["code"], 5)
        self.assertTrue(body["message"].endswith(
            "Namespace/Pipeline /nope not found"))
        self.assertEqual(body["details"], [{
            "@type": "type.googleapis.com/google.rpc.Status", "code": 5,
            "message": "Namespace/Pipeline /nope not found"}])
        status, _, body = self.fake.json(
            "GET", "/apis/v2beta1/pipelines/0000", token=TOKEN)
        self.assertEqual((status, body["code"]), (404, 5))

    def test_create_run_shape(self):
        status, ctype, run = self.create("train", {"epochs": "3", "lr": 0.5})
        self.assertEqual((status, ctype), (200, "application/json"))
        self.assertRegex(run["run_id"], UUID_RE)
        self.assertEqual(run["state"], "PENDING")
        self.assertEqual(run["display_name"], "run of train")
        self.assertEqual(run["storage_state"], "AVAILABLE")
        self.assertEqual(run["runtime_config"]["parameters"],
                         {"epochs": "3", "lr": 0.5})
        self.assertEqual(run["pipeline_version_reference"]["pipeline_id"],
                         self.pipeline_id("train"))
        self.assertRegex(run["pipeline_version_reference"]
                         ["pipeline_version_id"], UUID_RE)
        self.assertEqual(run["finished_at"], "1970-01-01T00:00:00Z")
        self.assertEqual([s["state"] for s in run["state_history"]],
                         ["PENDING"])
        self.assertNotIn("error", run)

    def test_state_progressions(self):
        cases = {"train": ["PENDING", "RUNNING", "SUCCEEDED", "SUCCEEDED"],
                 "broken": ["PENDING", "RUNNING", "FAILED", "FAILED"],
                 "stopped": ["PENDING", "RUNNING", "CANCELING", "CANCELED"],
                 "cached": ["PENDING", "SKIPPED", "SKIPPED", "SKIPPED"]}
        for name, want in cases.items():
            run = self.create(name)[2]
            self.assertEqual(self.states(run["run_id"], 4), want, name)
            _, _, done = self.fake.json("GET", "/apis/v2beta1/runs/" +
                                        run["run_id"], token=TOKEN)
            self.assertRegex(done["finished_at"], TIME_RE)
            self.assertNotEqual(done["finished_at"], "1970-01-01T00:00:00Z")
            if name == "broken":
                self.assertEqual(done["state_history"][-1]["error"]["message"],
                                 "task train failed")

    def test_outcome_parameter(self):
        run = self.create("train", {"outcome": "FAILED"})[2]
        self.assertEqual(self.states(run["run_id"], 3)[-1], "FAILED")

    def test_run_not_found(self):
        status, _, body = self.fake.json("GET", "/apis/v2beta1/runs/abc",
                                         token=TOKEN)
        self.assertEqual((status, body["code"]), (404, 5))
        self.assertEqual(body["details"][0]["message"], "Run abc not found")

    def test_create_run_errors(self):
        status, _, body = self.fake.json(
            "POST", "/apis/v2beta1/runs", {"display_name": "x", "bogus": 1},
            TOKEN)
        self.assertEqual((status, body["code"]), (400, 3))
        self.assertIn('unknown field "bogus"', body["message"])
        status, _, body = self.fake.json(
            "POST", "/apis/v2beta1/runs", {"pipeline_version_reference": {
                "pipeline_id": self.pipeline_id("train")}}, TOKEN)
        self.assertEqual((status, body["code"]), (400, 3))
        status, _, body = self.fake.json(
            "POST", "/apis/v2beta1/runs", {"display_name": "x",
                                           "pipeline_version_reference": {
                                               "pipeline_id": "missing"}},
            TOKEN)
        self.assertEqual((status, body["code"]), (500, 13))
        self.assertIn("Pipeline missing not found", body["message"])
        status, _, payload, _ = self.fake.call(
            "POST", "/apis/v2beta1/runs", raw=b"{not json", token=TOKEN)
        self.assertEqual((status, json.loads(payload)["code"]), (400, 3))

    def test_camel_case_and_deprecated_version_id(self):
        _, _, p = self.fake.json("GET", "/apis/v2beta1/pipelines/names/train",
                                 token=TOKEN)
        version = self.create("train")[2]["pipeline_version_reference"][
            "pipeline_version_id"]
        status, _, run = self.fake.json(
            "POST", "/apis/v2beta1/runs",
            {"displayName": "c", "pipelineVersionId": version,
             "runtimeConfig": {"parameters": {"a": "b"}}}, TOKEN)
        self.assertEqual(status, 200)
        self.assertEqual(run["pipeline_version_reference"]["pipeline_id"],
                         p["pipeline_id"])

    def test_auth(self):
        status, _, payload, resp = self.fake.call(
            "GET", "/apis/v2beta1/pipelines/names/train", token="wrong")
        body = json.loads(payload)
        self.assertEqual((status, body["code"]), (401, 16))
        self.assertTrue(resp.getheader("WWW-Authenticate"))
        status, _, _, _ = self.fake.call("GET", "/apis/v2beta1/healthz")
        self.assertEqual(status, 200)

    def test_unknown_route(self):
        status, _, body = self.fake.json("GET", "/apis/v2beta1/nothing",
                                         token=TOKEN)
        self.assertEqual((status, body), (404, {"code": 5,
                                                "message": "Not Found"}))

    def test_faults(self):
        self.fake.fault(kind="status", status=500)
        status, _, body = self.fake.json("GET", "/apis/v2beta1/runs/x",
                                         token=TOKEN)
        self.assertEqual((status, body["code"]), (500, 13))
        self.assertEqual(body["details"][0]["message"], "Internal Server Error")
        self.fake.fault(kind="garbage", body="<html>oops</html>")
        status, _, payload, _ = self.fake.call("GET", "/apis/v2beta1/runs/x",
                                               token=TOKEN)
        self.assertEqual((status, payload), (200, b"<html>oops</html>"))


class KfpGatewayV1Test(unittest.TestCase):
    def test_v1_error_bodies_repeat_the_message(self):
        fake = Fake("kfp_fake.py", "--gateway", "v1")
        try:
            status, _, body = fake.json("GET", "/apis/v2beta1/runs/abc")
            self.assertEqual(status, 404)
            self.assertEqual(body["error"], body["message"])
            self.assertEqual(body["code"], 5)
            status, ctype, payload, _ = fake.call("GET", "/apis/v2beta1/zzz")
            self.assertEqual((status, payload), (404, b"Not Found\n"))
            self.assertTrue(ctype.startswith("text/plain"))
        finally:
            fake.stop()


if __name__ == "__main__":
    unittest.main(verbosity=1)
