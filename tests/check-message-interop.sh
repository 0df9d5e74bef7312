#!/bin/sh
# Messages written by libaiplat are read by another protobuf implementation
# (Google's, through Python) and the other way round, for every v1 type:
#  - Python -> bytes -> libaiplat -> JSON -> Python json_format: equal;
#  - Python JSON -> libaiplat -> bytes -> Python: equal;
#  - the schema with proto3 `optional` instead of the `oneof _x` wrappers
#    (what protoc-c >= 1.5 would allow) gives the same bytes;
#  - a newer schema's extra fields survive a decode + encode in libaiplat.
# Needs protoc (Debian protobuf-compiler) and Python's google.protobuf
# (python3-protobuf); skipped (77) without them.
set -eu
src=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
build=${top_builddir:-$src}
codec="$build/tests/msg_codec"
[ -x "$codec" ] || { echo "check-message-interop: $codec not built" >&2; exit 1; }
command -v protoc >/dev/null 2>&1 || { echo "SKIP: no protoc (apt-get install protobuf-compiler)"; exit 77; }
py=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
  if "$p" -c 'import google.protobuf' >/dev/null 2>&1; then py=$p; break; fi
done
[ -n "$py" ] || { echo "SKIP: no Python google.protobuf (apt-get install python3-protobuf)"; exit 77; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/v1" "$tmp/opt/aiplat/messages/v1" "$tmp/newer/aiplat/messages/v1"
proto=aiplat/messages/v1/messages.proto
protoc -I "$src/proto" --python_out="$tmp/v1" "$src/proto/$proto"
# The same schema written with proto3 optional.
sed -E 's/oneof _([a-z_]+) \{ ([a-z0-9]+) ([a-z_]+) = ([0-9]+); \}/optional \2 \3 = \4;/' \
  "$src/proto/$proto" > "$tmp/opt/$proto"
grep -q 'optional bool enable_rag = 3;' "$tmp/opt/$proto"
if grep -q 'oneof _' "$tmp/opt/$proto"; then echo "sed missed a oneof" >&2; exit 1; fi
protoc -I "$tmp/opt" --python_out="$tmp/opt" "$tmp/opt/$proto"
# A newer schema: ChatRequest and Source gain fields.
sed -e 's|^  oneof _top_k { int32 top_k = 10; }|&\n  string added_later = 40;\n  repeated int64 ids_later = 41;|' \
    -e 's|^  double score = 4;.*|&\n  string added_later = 9;|' \
  "$src/proto/$proto" > "$tmp/newer/$proto"
[ "$(grep -c added_later "$tmp/newer/$proto")" -eq 2 ]
protoc -I "$tmp/newer" --python_out="$tmp/newer" "$tmp/newer/$proto"

cat > "$tmp/interop.py" <<'EOF'
import os, subprocess, sys
from google.protobuf import json_format
import google.protobuf
from aiplat.messages.v1 import messages_pb2 as pb

codec, phase = os.environ["CODEC"], sys.argv[1]

def run(type_name, direction, data):
    p = subprocess.run([codec, type_name, direction], input=data,
                       capture_output=True)
    if p.returncode != 0:
        sys.exit("msg_codec %s %s: %s" % (type_name, direction,
                                           p.stderr.decode()))
    return p.stdout

def samples():
    src = pb.Source(id="42", text="passage \u00fc", source="a.md", score=0.87)
    usage = pb.Usage(prompt_tokens=9, completion_tokens=3, total_tokens=12)
    err = pb.Error(code=pb.ERROR_CODE_RATE_LIMITED, message="slow down",
                   retryable=True)
    req = pb.ChatRequest(user_id="u1", message="hi", request_id="r1",
                         conversation_id="c1", stream=True, model="m",
                         temperature=0.0, max_tokens=256, top_k=0)
    req.enable_rag = False
    return [
        req,
        pb.ChatRequest(user_id="u2", message="defaults"),
        pb.ChatResponse(request_id="r1", text="answer", sources=[src, src],
                        usage=usage, model="m", finish_reason="stop",
                        conversation_id="c1"),
        pb.ChatResponse(request_id="r2", error=err),
        pb.ChatChunk(request_id="r1", seq=4294967295, delta="He", done=True,
                     finish_reason="length", usage=usage, sources=[src]),
        pb.VoiceRequest(user_id="u", request_id="r", audio=b"\x00\x01\xffRIFF",
                        audio_format="wav", language="de-CH",
                        conversation_id="c", enable_rag=True, voice="v"),
        pb.VoiceResponse(request_id="r", transcript="t", text="x",
                         audio=bytes(range(256)), audio_format="wav",
                         sources=[src], error=err, conversation_id="c"),
        pb.TranscribeRequest(request_id="r", audio=b"\x00" * 100,
                             audio_format="pcm_s16le_16000", language="en",
                             response_format="verbose_json", prompt="p"),
        pb.TranscribeResponse(request_id="r", text="hello world", language="en",
                              duration_seconds=1.25,
                              segments=[pb.Segment(start=0, end=0.5, text="hello"),
                                        pb.Segment(start=0.5, end=1.25, text="world")]),
        pb.SynthesizeRequest(request_id="r", text="hi", voice="alloy",
                             format="mp3", speed=1.5),
        pb.SynthesizeResponse(request_id="r", audio=b"ID3\x00",
                              content_type="audio/mpeg", error=err),
        pb.PipelineTrigger(request_id="r", engine="kubeflow", pipeline="p",
                           namespace="ai-ml", parameters={"a": "1", "b": ""},
                           pipeline_version="v2"),
        pb.PipelineStatus(request_id="r", run_id="run-1", engine="argo",
                          phase="Succeeded", message="done",
                          created_at_ms=1764150000123,
                          updated_at_ms=1764150005123,
                          finished_at_ms=-1, terminal=True, pipeline="p"),
        err, src, usage, pb.Segment(start=1, end=2, text="x"),
    ]

if phase == "v1":
    count = 0
    for msg in samples():
        name = msg.DESCRIPTOR.full_name
        wire = msg.SerializeToString()
        # Python bytes -> libaiplat JSON -> Python: the same message.
        ours = run(name, "to-json", wire).decode()
        back = type(msg)()
        json_format.Parse(ours, back)
        assert back == msg, (name, ours, msg)
        # Python JSON -> libaiplat bytes -> Python: the same message.
        pj = json_format.MessageToJson(msg, preserving_proto_field_name=True)
        ours_wire = run(name, "to-binary", pj.encode())
        again = type(msg)()
        again.ParseFromString(ours_wire)
        assert again == msg, (name, pj, again)
        if not name.endswith("PipelineTrigger"):  # map order is free
            assert ours_wire == wire, (name, ours_wire.hex(), wire.hex())
        count += 1
    # enable_rag absent vs explicit false, as Python sees libaiplat's bytes.
    req = pb.ChatRequest()
    req.ParseFromString(run("ChatRequest", "to-binary", b'{"message":"x"}'))
    assert not req.HasField("enable_rag")
    req.ParseFromString(run("ChatRequest", "to-binary", b'{"enable_rag":false}'))
    assert req.HasField("enable_rag") and req.enable_rag is False
    print("check-message-interop: %d messages agree with Python protobuf %s"
          % (count, google.protobuf.__version__))
elif phase == "optional":
    # proto3 optional gives the same bytes as the oneof wrappers.
    o = pb.ChatRequest(user_id="u", enable_rag=False, temperature=0.0, model="")
    assert o.HasField("enable_rag") and o.HasField("model")
    assert run("ChatRequest", "to-binary",
               b'{"user_id":"u","enable_rag":false,"temperature":0,"model":""}') \
        == o.SerializeToString()
    o2 = pb.ChatRequest()
    o2.ParseFromString(run("ChatRequest", "to-binary", b'{"top_k":0}'))
    assert o2.HasField("top_k") and not o2.HasField("enable_rag")
    print("check-message-interop: proto3 optional is wire-identical")
elif phase == "newer":
    # Fields of a newer schema survive libaiplat unchanged.
    n = pb.ChatResponse(request_id="r", sources=[pb.Source(id="1",
                                                           added_later="s")])
    nr = pb.ChatRequest(message="m", added_later="later", ids_later=[1, 2, 300])
    for msg in (n, nr):
        out = run(msg.DESCRIPTOR.full_name, "reencode", msg.SerializeToString())
        back = type(msg)()
        back.ParseFromString(out)
        assert back == msg, (msg, back)
    print("check-message-interop: a newer schema's fields survive")
EOF
for phase in v1 optional newer; do
  dir=$tmp/$phase
  [ "$phase" = optional ] && dir=$tmp/opt
  CODEC=$codec PYTHONPATH=$dir "$py" "$tmp/interop.py" "$phase"
done
