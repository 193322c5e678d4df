"""The REST body validator: an Envoy ext_proc service (`python -m edge.validation`).

Envoy's grpc_json_transcoder drops unknown JSON fields and unknown enum names silently
(envoyproxy/envoy#46623), so a typo such as `{"displayname": "A"}` would reach a service as an
empty field. Envoy streams every REST request body to this service before the transcoder
sees it; a body that does not parse into its request message (unknown field, unknown enum
name, wrong type) gets a 400 in the google.rpc.Status JSON every REST error has, naming the
field, and never reaches a service.

- rules.py: the contracts' google.api.http bindings (descriptor set) -> matchers and checks.
- api.py: the ExternalProcessor servicer, thin.
- app.py: settings (VALIDATION_PORT, VALIDATION_METRICS_PORT, OPENHR_DESCRIPTOR) and wiring.

Envoy's side (edge/envoy/envoy.yaml.j2, only when a `validation` cluster is rendered):
bodies only (headers SKIP, body BUFFERED: a GET opens no stream), never gRPC or grpc-web
(skipped by content-type), fail closed (failure_mode_allow false: validator down -> 500,
slower than message_timeout 0.5 s -> 504; never an unchecked body).
"""
