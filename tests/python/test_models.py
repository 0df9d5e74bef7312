"""Model clients against the local model backend
(tools/model-backend/aiplat-model-backend, started with --no-stt).
Skipped when the build has no backend (--disable-model-backend)."""

import socket
import threading
import unittest

import aiplat
import support
from aiplat import Status

CONTEXT = ("Context:\n[1] Paris is the capital of France.\n"
           "[2] Bananas are yellow when ripe.")
QUESTION = "What is the capital of France?"


@unittest.skipUnless(support.ModelBackend.available(),
                     "aiplat-model-backend not built (--disable-model-backend)")
class ModelsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = support.ModelBackend()
        cls.url = cls.backend.url

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()

    def test_llm_complete(self):
        with aiplat.LLM(url=self.url, model="local", timeout_ms=20000) as llm:
            llm.health()
            r = llm.complete([("system", CONTEXT), {"role": "user", "content": QUESTION}],
                             max_tokens=64, temperature=0)
        self.assertIn("Paris", r.text)
        self.assertEqual(r.finish_reason, "stop")
        self.assertGreater(r.total_tokens, 0)
        self.assertEqual(r.total_tokens, r.prompt_tokens + r.completion_tokens)

    def test_llm_stream_with_a_python_token_callback(self):
        pieces, threads = [], set()

        def on_token(text):
            pieces.append(text)
            threads.add(threading.get_ident())

        llm = aiplat.LLM(url=self.url)
        r = llm.stream([("system", CONTEXT), ("user", QUESTION)], on_token)
        self.assertGreater(len(pieces), 1)
        self.assertEqual("".join(pieces), r.text)
        self.assertIn("Paris", r.text)
        self.assertEqual(threads, {threading.get_ident()})  # the calling thread

        # False stops the stream.
        seen = []
        with self.assertRaises(aiplat.CancelledError):
            llm.stream([("system", CONTEXT), ("user", QUESTION)],
                       lambda t: seen.append(t) or False)
        self.assertEqual(len(seen), 1)

        # An exception stops it and comes out here, unchanged.
        class Stop(Exception):
            pass

        def boom(text):
            raise Stop(text)

        with self.assertRaises(Stop):
            llm.stream("hello", boom)
        llm.close()

    def test_embeddings(self):
        emb = aiplat.Embeddings(url=self.url)
        vectors = emb.embed(["the capital of France", "yellow bananas", "France capital"])
        self.assertEqual(len(vectors), 3)
        dim = len(vectors[0])
        self.assertGreater(dim, 8)
        self.assertTrue(all(len(v) == dim for v in vectors))

        def cos(a, b):
            return sum(x * y for x, y in zip(a, b))

        self.assertGreater(cos(vectors[0], vectors[2]), cos(vectors[0], vectors[1]))
        self.assertEqual(len(emb.embed("one")), dim)
        emb.set_expected_dimension(dim + 1)
        with self.assertRaises(aiplat.ProtocolError):
            emb.embed(["x"])

    def test_reranker(self):
        rr = aiplat.Reranker(url=self.url)
        docs = ["bananas are yellow", "Paris is the capital of France", "cars have wheels"]
        ranked = rr.rerank("capital of France", docs, top_n=2)
        self.assertEqual(len(ranked), 2)
        self.assertEqual(ranked[0][0], 1)
        self.assertGreaterEqual(ranked[0][1], ranked[1][1])
        self.assertIn(rr.api, (aiplat.RerankerApi.COHERE, aiplat.RerankerApi.TEI))

    def test_tts_and_stt(self):
        tts = aiplat.TTS(url=self.url, format="wav")
        audio, ctype = tts.synthesize("hello world")
        self.assertEqual(audio[:4], b"RIFF")
        self.assertEqual(ctype, "audio/wav")
        chunks = []
        self.assertEqual(tts.synthesize_stream("hello world", chunks.append), "audio/wav")
        self.assertEqual(b"".join(chunks), audio)
        with self.assertRaises(aiplat.InvalidArgumentError):
            tts.synthesize("")
        # The backend runs without speech recognition: the server's own
        # words come back in the exception.
        stt = aiplat.STT(url=self.url)
        with self.assertRaises(aiplat.NotFoundError) as cm:
            stt.transcribe(audio)
        self.assertIn("--no-stt", cm.exception.message)
        with self.assertRaises(aiplat.InvalidArgumentError):
            stt.transcribe(b"definitely not audio")

    def test_unreachable_server_and_bad_settings(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # closed again: nobody listens there
        llm = aiplat.LLM(url="http://127.0.0.1:%d" % port, max_retries=0,
                         connect_timeout_ms=2000)
        with self.assertRaises(aiplat.ConnectionFailedError) as cm:
            llm.complete("hi")
        self.assertEqual(cm.exception.status, Status.CONNECTION)
        self.assertIn(str(port), cm.exception.message)
        with self.assertRaises(aiplat.AiplatError):
            llm.set_url("ftp://nowhere")
        with self.assertRaises(TypeError):
            aiplat.LLM(url=self.url, no_such_setting=1)
        with self.assertRaises(aiplat.ConfigError):
            aiplat.Reranker(aiplat.Config({"RERANKER_URL": None}))


if __name__ == "__main__":
    unittest.main()
