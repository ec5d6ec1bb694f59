//! The integration tests: one test binary (`cargo test --test it`), one
//! module per area, all on one harness (`common`) compiled once. Tests share
//! this process and run on parallel threads, so none may rely on
//! process-wide state: no `std::env::set_var`, no global tracing
//! subscriber, no fixed ports, no change of directory. Run one area with
//! `cargo test --test it <module>::`.

mod common;

mod adaptive;
mod affinity;
mod agent_fixtures;
mod agents_cli;
mod api;
mod architecture;
mod budgets;
mod busy_poll;
mod cache_fanout;
mod chat_bytes;
mod completions;
mod dashboard;
mod degrade;
mod deploy;
mod edge;
mod edge_encoding;
mod egress_proxy;
mod embeddings_body;
mod embeddings_pass;
mod examples;
mod fake_anthropic;
mod fake_bedrock;
mod fake_gemini;
mod fallbacks;
mod faults;
mod hedging;
mod hostile_clients;
mod keys;
mod kind_anthropic;
mod kind_azure;
mod kind_bedrock;
mod kind_cohere;
mod kind_gemini;
mod lifecycle;
mod log_lines;
mod managed_redis;
mod messages;
mod mock_parity;
mod model_names;
mod peers;
mod replicas;
mod rerank;
mod resilience;
mod responses;
mod responses_state;
mod responses_stored;
mod saturation;
mod sdk_anthropic;
mod sdk_completions;
mod sdk_providers;
mod sdk_responses;
mod sdk_retry;
mod spend;
mod state_store;
mod strategies;
mod stream_cache;
mod telemetry;
mod telemetry_spans;
mod translate_policy;
mod upstream_conns;
mod upstream_h1;
mod upstream_tls;
mod usage;
mod warnings;
