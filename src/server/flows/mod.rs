//! The flows endpoints share, so each endpoint file only parses, routes and
//! writes its answer.
//!
//! Place in the pipeline: between the endpoints and routing. `call` is the
//! cached single-flight call (chat, completions, Responses, Messages),
//! `chat_stream` serves streams on cached routes (replay, cross-serving,
//! coalescing), `items` is the per-item cache + dedupe + shared fetch
//! (embeddings, rerank), `sse` pipes a served stream to the client,
//! `translate` turns a chat stream into another API's events, and `stored`
//! keeps the conversations of stateful Responses. `flights`
//! holds the calls identical requests share. Must not parse client bodies
//! or know routes' targets: endpoints and routing do.

pub(crate) mod call;
pub(crate) mod chat_stream;
pub(crate) mod flights;
pub(crate) mod items;
pub(crate) mod sse;
pub(crate) mod stored;
pub(crate) mod translate;
