"""The edge: what runs beside Envoy (the REST body validator)."""
