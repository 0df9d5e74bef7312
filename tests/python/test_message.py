"""Messages: fields by name, nested and repeated messages, maps, wire
bytes, JSON, hostile input."""

import json
import unittest

import aiplat
from aiplat import FieldKind, Msg, MsgType, Status


class TestMessages(unittest.TestCase):
    def test_fields_by_kind_and_round_trip(self):
        m = Msg("ChatRequest", user_id="u1", message="h\u00e9llo", enable_rag=False,
                temperature=0.5, max_tokens=64)
        self.assertEqual(m.type, MsgType.CHAT_REQUEST)
        self.assertEqual(m.type_name, "aiplat.messages.v1.ChatRequest")
        wire = m.encode()
        self.assertEqual(len(wire), m.encoded_size())
        back = Msg.decode(MsgType.CHAT_REQUEST, wire)
        self.assertEqual(back["message"], "h\u00e9llo")
        self.assertIs(back["enable_rag"], False)
        self.assertTrue(back.has("enable_rag"))
        self.assertEqual(back["temperature"], 0.5)
        self.assertEqual(back["max_tokens"], 64)
        self.assertEqual(back.encode(), wire)

    def test_absent_enable_rag_reads_true(self):
        m = Msg(MsgType.CHAT_REQUEST)
        self.assertFalse(m.has("enable_rag"))
        self.assertIs(m["enable_rag"], True)

    def test_nested_repeated_and_json(self):
        r = Msg(MsgType.CHAT_RESPONSE, request_id="r1", text="answer",
                sources=[{"id": "1", "text": "a", "score": 0.9},
                         {"id": "2", "text": "b", "score": 0.1}],
                usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
        self.assertEqual(r.count("sources"), 2)
        self.assertEqual([s["id"] for s in r["sources"]], ["1", "2"])
        self.assertEqual(r["usage"]["total_tokens"], 12)
        self.assertIsNone(r["error"])
        err = r.message("error", create=True)
        err["code"] = Status.RATE_LIMITED
        err["message"] = "slow down"
        d = json.loads(r.to_json())
        self.assertEqual(d["error"]["code"], "ERROR_CODE_RATE_LIMITED")
        self.assertEqual(d["sources"][1]["text"], "b")
        again = Msg.from_json("ChatResponse", r.to_json())
        self.assertEqual(again.encode(), r.encode())
        r.remove("sources", 0)
        self.assertEqual([s["id"] for s in r["sources"]], ["2"])
        copy = r.copy()
        r.close()
        self.assertEqual(copy["text"], "answer")

    def test_bytes_maps_and_unsigned(self):
        v = Msg(MsgType.VOICE_REQUEST, audio=b"\x00RIFF\xff", user_id="u")
        self.assertEqual(v["audio"], b"\x00RIFF\xff")
        self.assertIn("<6 bytes>", v.to_json(elide_bytes=True))
        t = Msg("PipelineTrigger", parameters={"a": "1", "b": "two"})
        self.assertEqual(t["parameters"], {"a": "1", "b": "two"})
        self.assertEqual(t.map_get("parameters", "b"), "two")
        self.assertIsNone(t.map_get("parameters", "zzz"))
        t.map_remove("parameters", "a")
        self.assertEqual(t.map("parameters"), {"b": "two"})
        c = Msg("ChatChunk", seq=7)
        self.assertEqual(c.get_uint("seq"), 7)
        with self.assertRaises(OverflowError):
            c.set_uint("seq", -1)
        with self.assertRaises(aiplat.InvalidArgumentError):
            c.set_uint("seq", 2**40)  # does not fit uint32: the library says so

    def test_introspection(self):
        names = aiplat.field_names("ChatRequest")
        self.assertEqual(names[:3], ["user_id", "message", "enable_rag"])
        kind, repeated, child, number = aiplat.field_info(MsgType.CHAT_RESPONSE, "sources")
        self.assertEqual((kind, repeated, child, number),
                         (FieldKind.MESSAGE, True, MsgType.SOURCE, 3))

    def test_wrong_field_names_and_kinds(self):
        m = Msg(MsgType.CHAT_REQUEST)
        with self.assertRaises(aiplat.InvalidArgumentError) as cm:
            m["no_such_field"] = "x"
        self.assertIn("no_such_field", cm.exception.message)
        with self.assertRaises(aiplat.InvalidArgumentError) as cm:
            m.set_int("user_id", 3)
        self.assertIn("user_id", cm.exception.message)
        with self.assertRaises(aiplat.InvalidArgumentError):
            m.set_string("message", b"\xff\xfe not utf-8")
        with self.assertRaises(aiplat.NotFoundError):
            Msg("NoSuchType")

    def test_hostile_bytes(self):
        for junk in (b"\xff\xff\xff", b"\x0a\x80", b"\x12\x05ab", b"\x0b"):
            with self.assertRaises(aiplat.DecodeError, msg=junk) as cm:
                Msg.decode(MsgType.CHAT_REQUEST, junk)
            self.assertIn("ChatRequest", cm.exception.message)
        with self.assertRaises(aiplat.TooLargeError):
            Msg.decode(MsgType.CHAT_REQUEST, b"\x00" * 64, max_size=16)
        with self.assertRaises(aiplat.DecodeError):
            Msg.from_json(MsgType.CHAT_REQUEST, "{not json")

    def test_borrowed_child_dies_with_its_parent(self):
        r = Msg(MsgType.CHAT_RESPONSE, usage={"total_tokens": 1})
        usage = r["usage"]
        r.close()
        with self.assertRaises(ValueError):
            usage["total_tokens"]
        with self.assertRaises(ValueError):
            r.encode()


if __name__ == "__main__":
    unittest.main()
