"""RAG (aiplat/rag.h) through the Python package: ingest into the local
store with the local model backend's embeddings, query, context, re-ingest,
delete. Skipped when the library has no RAG API yet or no backend."""

import os
import shutil
import tempfile
import unittest

import aiplat
import support
from aiplat import rag

DOCS = {
    "capitals.md": "# Capitals\n\nParis is the capital of France. Berlin is the capital "
                   "of Germany.\n",
    "fruit.md": "Bananas are yellow when ripe. Apples can be red or green.\n",
}


@unittest.skipUnless(rag.available(), "this libaiplat has no RAG API yet")
@unittest.skipUnless(support.ModelBackend.available(), "aiplat-model-backend not built")
class RagTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = support.ModelBackend()
        cls.dir = tempfile.mkdtemp(prefix="aiplat-py-rag-")

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        path = os.path.join(self.dir, self.id().rsplit(".", 1)[-1] + ".store")
        self.cfg = aiplat.Config({"EMBEDDINGS_URL": self.backend.url, "VECTOR_STORE": "local",
                                  "VECTOR_STORE_PATH": path, "RERANKER_URL": None,
                                  "MILVUS_HOST": None})
        self.rag = aiplat.RAG(self.cfg, top_k=2)

    def tearDown(self):
        self.rag.close()
        self.cfg.close()

    def ingest_all(self):
        for source, text in DOCS.items():
            n, outcome = self.rag.ingest(source, text, metadata={"lang": "en"})
            self.assertGreaterEqual(n, 1)
            self.assertEqual(outcome, aiplat.IngestOutcome.NEW)

    def test_ingest_query_context(self):
        self.assertEqual(self.rag.store_backend, "local")
        self.assertFalse(self.rag.reranks)
        self.ingest_all()
        self.assertGreaterEqual(self.rag.count(), 2)
        with self.rag.query("What is the capital of France?") as results:
            self.assertGreaterEqual(len(results), 1)
            best = results[0]
            self.assertEqual(best.source, "capitals.md")
            self.assertIn("Paris", best.text)
            self.assertEqual(best.metadata, {"lang": "en"})
            self.assertFalse(results.reranked)
            self.assertTrue(results.context(4096).startswith("[1] (source: capitals.md)"))
        ctx = self.rag.context("Which fruit is yellow?")
        self.assertIn("Bananas", ctx)
        only = self.rag.query("capital", top_k=1, source="fruit.md")
        self.assertTrue(all(p.source == "fruit.md" for p in only))

    def test_reingest_and_delete(self):
        self.ingest_all()
        _, outcome = self.rag.ingest("fruit.md", DOCS["fruit.md"], metadata={"lang": "en"})
        self.assertEqual(outcome, aiplat.IngestOutcome.UNCHANGED)
        _, outcome = self.rag.ingest("fruit.md", "Cherries are red.")
        self.assertEqual(outcome, aiplat.IngestOutcome.REPLACED)
        self.rag.delete_source("fruit.md")
        self.assertTrue(all(p.source != "fruit.md" for p in self.rag.query("fruit", top_k=5)))
        path = os.path.join(self.dir, "notes.md")
        with open(path, "w") as f:
            f.write("# Notes\n\nThe office opens at nine.\n")
        n, outcome = self.rag.ingest_file(path)
        self.assertEqual((n, outcome), (1, aiplat.IngestOutcome.NEW))
        self.assertEqual(self.rag.query("office opens", top_k=1)[0].metadata,
                         {"title": "Notes"})

    def test_bad_input(self):
        with self.assertRaises(aiplat.InvalidArgumentError):
            self.rag.query("")
        with self.assertRaises(aiplat.InvalidArgumentError):
            self.rag.ingest("x.md", "text", metadata="[1, 2]")  # not a JSON object
        with self.assertRaises(aiplat.InvalidArgumentError):
            self.rag.ingest("x.md", b"\xff\xfe not utf-8")
        with self.assertRaises(aiplat.NotFoundError):
            self.rag.ingest_file(os.path.join(self.dir, "missing.md"))
        with self.assertRaises(aiplat.InvalidArgumentError):
            self.rag.set_top_k(0)
        with self.assertRaises(aiplat.StateError):
            self.rag.set_rerank(True)  # no reranker configured


if __name__ == "__main__":
    unittest.main()
