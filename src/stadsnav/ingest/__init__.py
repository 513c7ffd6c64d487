"""Ingestion: transports, network-server envelopes, per-model decoders, mapping to Smart Data
Models."""
