#!/usr/bin/env node
// A fake OTLP/HTTP collector for tests/test_otel: receives POST /v1/traces,
// decodes the body with the protobuf decoders generated from the official
// OpenTelemetry definitions (npm @opentelemetry/otlp-transformer 0.52, which
// bundles them; not the library's own encoder) and appends one JSON line per
// span to OUT.
//
// usage: otlp_collector.js DIR   (writes DIR/port, DIR/spans.jsonl; reads
// DIR/mode before each answer: ok, 429, 503, slow, 400)
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

const dir = process.argv[2];
let root;
try {
  root = require('@opentelemetry/otlp-transformer/build/src/generated/root');
} catch (e) {
  process.stderr.write('otlp_collector: decoder unavailable: ' + e.message + '\n');
  process.exit(77);
}
const pb = root.opentelemetry.proto;
const Req = pb.collector.trace.v1.ExportTraceServiceRequest;
const Resp = pb.collector.trace.v1.ExportTraceServiceResponse;

const hex = (b) => (b && b.length ? Buffer.from(b).toString('hex') : '');

function anyValue(v) {
  if (!v) return null;
  if (v.stringValue !== undefined && v.stringValue !== null && v.value === 'stringValue')
    return v.stringValue;
  switch (v.value) {
    case 'stringValue': return v.stringValue;
    case 'boolValue': return v.boolValue;
    case 'intValue': return Number(v.intValue);
    case 'doubleValue': return v.doubleValue;
    default: return null;
  }
}

function attrs(list) {
  const o = {};
  for (const kv of list || []) o[kv.key] = anyValue(kv.value);
  return o;
}

function mode() {
  try {
    return fs.readFileSync(path.join(dir, 'mode'), 'utf8').trim();
  } catch (e) {
    return 'ok';
  }
}

let requests = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    requests++;
    const m = mode();
    const log = { request: requests, mode: m, contentType: req.headers['content-type'],
                  auth: req.headers['x-test-auth'] || null, path: req.url };
    if (m !== 'discard')
      fs.appendFileSync(path.join(dir, 'requests.jsonl'), JSON.stringify(log) + '\n');
    if (m === '429' || m === '503') {
      res.writeHead(Number(m), { 'Retry-After': '1' });
      res.end();
      return;
    }
    if (m === 'discard') { // benchmarks: the collector's own work stays out
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
      res.end();
      return;
    }
    if (m === '400') {
      res.writeHead(400);
      res.end();
      return;
    }
    const answer = () => {
      let decoded;
      try {
        decoded = Req.decode(Buffer.concat(chunks));
      } catch (e) {
        fs.appendFileSync(path.join(dir, 'errors.txt'), String(e) + '\n');
        res.writeHead(400);
        res.end();
        return;
      }
      const lines = [];
      for (const rs of decoded.resourceSpans) {
        const resource = attrs(rs.resource && rs.resource.attributes);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            lines.push(JSON.stringify({
              traceId: hex(s.traceId), spanId: hex(s.spanId),
              parentSpanId: hex(s.parentSpanId), name: s.name, kind: s.kind,
              flags: s.flags, start: String(s.startTimeUnixNano),
              end: String(s.endTimeUnixNano),
              status: { code: s.status ? s.status.code : 0,
                        message: s.status ? s.status.message : '' },
              attributes: attrs(s.attributes), resource,
              scope: ss.scope ? ss.scope.name : '' }));
          }
        }
      }
      if (lines.length)
        fs.appendFileSync(path.join(dir, 'spans.jsonl'), lines.join('\n') + '\n');
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
      res.end(Buffer.from(Resp.encode(Resp.create({})).finish()));
    };
    if (m === 'slow') setTimeout(answer, 3000);
    else answer();
  });
});

server.listen(0, '127.0.0.1', () => {
  const tmp = path.join(dir, 'port.tmp');
  fs.writeFileSync(tmp, String(server.address().port));
  fs.renameSync(tmp, path.join(dir, 'port'));
});
process.on('SIGTERM', () => process.exit(0));
