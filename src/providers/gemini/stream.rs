//! Gemini `streamGenerateContent?alt=sse` -> OpenAI `chat.completion.chunk`
//! SSE frames.
//!
//! Place in the pipeline: the provider decodes the upstream body with
//! `api::sse::SseDecoder`, hands each event to [`GeminiStream::on_event`] and
//! calls [`GeminiStream::finish`] at EOF; the frames go to the client as is.
//!
//! Every `data:` event is a whole `GenerateContentResponse` holding the next
//! slice of each candidate. Per candidate (choice `index`): the first time it
//! appears a `{role: "assistant", content: ""}` chunk; its text as
//! `delta.content`; its thought parts as `delta.reasoning_content`; each
//! `functionCall` part (Gemini sends it whole) as one
//! `delta.tool_calls` entry with `index`, a fresh id, name and the full
//! arguments; when it has a `finishReason`, an empty delta with the mapped
//! `finish_reason`. `usageMetadata` is kept from the last event that has it.
//! There is no terminal event: EOF is a normal end once every candidate that
//! appeared has finished (or the prompt was blocked); otherwise `finish`
//! returns `BadResponse`. An `{"error": ...}` event is a `BadResponse`.
//! Must not buffer the stream or emit anything after `[DONE]`.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::bad_response;
use super::response::{
    Piece, call_id, candidate_meta, completion_id, finish_reason, now, pieces, prompt_blocked,
    upstream_error, usage,
};
use crate::api::sse::{DONE, SseEvent, data_event};
use crate::providers::translate::TranslateError;

/// Translation state of one streamed answer.
#[derive(Debug)]
pub struct GeminiStream {
    model: String,
    include_usage: bool,
    /// Set from the first event (Gemini's `responseId` when present).
    id: Option<String>,
    created: u64,
    choices: Vec<Choice>,
    usage: Option<Value>,
    blocked: bool,
    done: bool,
}

#[derive(Debug)]
struct Choice {
    index: u64,
    tool_calls: u64,
    finished: bool,
}

impl GeminiStream {
    pub fn new(model: &str, include_usage: bool) -> Self {
        GeminiStream {
            model: model.to_string(),
            include_usage,
            id: None,
            created: now(),
            choices: Vec::new(),
            usage: None,
            blocked: false,
            done: false,
        }
    }

    /// Translates one upstream event, appending OpenAI frames to `out`.
    pub fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.done {
            return Err(bad_response("event after the end of the stream"));
        }
        if ev.data.trim().is_empty() {
            return Ok(());
        }
        let v: Value = serde_json::from_str(&ev.data)
            .map_err(|e| bad_response(format!("invalid JSON in stream event: {e}")))?;
        if let Some(err) = upstream_error(&v) {
            return Err(err);
        }
        if self.id.is_none() {
            self.id = Some(completion_id(&v));
        }
        if let Some(meta) = v.get("usageMetadata") {
            self.usage = Some(meta.clone());
        }
        let candidates = v
            .get("candidates")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if candidates.is_empty() && prompt_blocked(&v) && !self.blocked {
            self.blocked = true;
            self.emit(out, 0, json!({"role": "assistant", "content": ""}), None);
            self.emit(out, 0, json!({}), Some("content_filter"));
        }
        for (position, candidate) in candidates.iter().enumerate() {
            self.on_candidate(candidate, position, out)?;
        }
        Ok(())
    }

    fn on_candidate(
        &mut self,
        candidate: &Value,
        position: usize,
        out: &mut Vec<Bytes>,
    ) -> Result<(), TranslateError> {
        let (index, reason) = candidate_meta(candidate, position);
        let pieces = pieces(candidate)?;
        let slot = match self.choices.iter().position(|c| c.index == index) {
            Some(slot) => slot,
            None => {
                self.choices.push(Choice {
                    index,
                    tool_calls: 0,
                    finished: false,
                });
                self.emit(
                    out,
                    index,
                    json!({"role": "assistant", "content": ""}),
                    None,
                );
                self.choices.len() - 1
            }
        };
        if self.choices[slot].finished {
            if pieces.is_empty() {
                return Ok(());
            }
            return Err(bad_response("content after the candidate's finishReason"));
        }
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Thought(t) => {
                    self.emit(out, index, json!({ "reasoning_content": t }), None);
                }
                Piece::Call { name, args } => {
                    if !text.is_empty() {
                        self.emit(
                            out,
                            index,
                            json!({ "content": std::mem::take(&mut text) }),
                            None,
                        );
                    }
                    let call_index = self.choices[slot].tool_calls;
                    self.choices[slot].tool_calls += 1;
                    let call = json!({"index": call_index, "id": call_id(), "type": "function",
                                      "function": {"name": name, "arguments": args}});
                    self.emit(out, index, json!({ "tool_calls": [call] }), None);
                }
            }
        }
        if !text.is_empty() {
            self.emit(out, index, json!({ "content": text }), None);
        }
        if let Some(reason) = reason {
            let choice = &mut self.choices[slot];
            choice.finished = true;
            let finish = finish_reason(reason, choice.tool_calls > 0);
            self.emit(out, index, json!({}), Some(finish));
        }
        Ok(())
    }

    /// Upstream EOF: the usage chunk (when asked for) and `[DONE]`, or
    /// `BadResponse` if the answer was cut short.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.done {
            return Ok(());
        }
        if self.choices.is_empty() && !self.blocked {
            return Err(bad_response("stream ended before any candidate"));
        }
        if self.choices.iter().any(|c| !c.finished) {
            return Err(bad_response("stream ended before finishReason"));
        }
        self.done = true;
        if self.include_usage {
            let mut chunk = self.chunk_base();
            chunk.insert("choices".into(), json!([]));
            chunk.insert("usage".into(), usage(self.usage.as_ref()));
            out.push(data_event(&serde_json::to_vec(&chunk).unwrap_or_default()));
        }
        out.push(Bytes::from_static(DONE));
        Ok(())
    }

    fn chunk_base(&self) -> Map<String, Value> {
        let mut chunk = Map::new();
        chunk.insert("id".into(), self.id.clone().unwrap_or_default().into());
        chunk.insert("object".into(), "chat.completion.chunk".into());
        chunk.insert("created".into(), self.created.into());
        chunk.insert("model".into(), self.model.clone().into());
        chunk
    }

    fn emit(&self, out: &mut Vec<Bytes>, index: u64, delta: Value, finish: Option<&str>) {
        let mut chunk = self.chunk_base();
        chunk.insert(
            "choices".into(),
            json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        );
        if self.include_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        out.push(data_event(&serde_json::to_vec(&chunk).unwrap_or_default()));
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
