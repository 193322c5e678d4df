"""The embeddings peer: plain sentence-transformers on torch behind the same EmbedTexts RPC
(grpc.aio, the encode call on a worker thread), no batching across requests, no cache, no ONNX.

    python -m bench.embeddings_peer --port 50100 [--model all-MiniLM-L6-v2]"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.enrichment.models import DEFAULT_MODEL, reference_model, spec_for


class PeerApi(enrichment_pb2_grpc.EnrichmentInternalServiceServicer):
    def __init__(self, model_id: str) -> None:
        self._model_id, self._dimensions = model_id, spec_for(model_id).dimensions
        self._model = reference_model(model_id)

    async def EmbedTexts(self, request, context):
        vectors = await asyncio.to_thread(
            self._model.encode, list(request.texts), normalize_embeddings=True, convert_to_numpy=True
        )
        return enrichment_pb2.EmbedTextsResponse(
            model_id=self._model_id,
            dimensions=self._dimensions,
            embeddings=[enrichment_pb2.Embedding(values=v) for v in vectors.tolist()],
        )


async def serve(port: int, model_id: str) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    enrichment_pb2_grpc.add_EnrichmentInternalServiceServicer_to_server(PeerApi(model_id), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.model))
