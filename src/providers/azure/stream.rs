//! Azure OpenAI's chat stream, passed on as OpenAI chunks.
//!
//! Place in the pipeline: the `azure` provider feeds the upstream SSE body
//! through [`crate::providers::upstream::translated_sse`] with an
//! [`AzureStream`]. Azure streams OpenAI `chat.completion.chunk` events (the
//! usage chunk too, when the client asked with `stream_options`), plus its
//! own content-filter annotations: a first event with `"object": ""`,
//! `"choices": []` and `prompt_filter_results`, and (asynchronous filter)
//! events with `"id": ""`. Those are not OpenAI chunks, so they are dropped;
//! every real chunk passes unchanged. An in-stream `{"error": ...}` ends the
//! stream with an error; a stream without `[DONE]` is a broken answer.
//! Must not rewrite the chunks it passes.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;

use crate::api::sse::{DONE, SseEvent, data_event};
use crate::providers::translate::TranslateError;
use crate::providers::upstream::StreamTranslate;

/// Passes Azure's chunks on, without its filter annotations.
#[derive(Debug, Default)]
pub struct AzureStream {
    done: bool,
}

/// What decides whether an event is passed on.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

impl AzureStream {
    pub fn new() -> Self {
        AzureStream::default()
    }
}

impl StreamTranslate for AzureStream {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.done || ev.data.is_empty() {
            return Ok(());
        }
        if ev.data == "[DONE]" {
            self.done = true;
            out.push(Bytes::from_static(DONE));
            return Ok(());
        }
        let head: Head = serde_json::from_str(&ev.data)
            .map_err(|_| TranslateError::BadResponse("a stream event that is not JSON".into()))?;
        if let Some(error) = head.error {
            let message = error
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("error event");
            return Err(TranslateError::BadResponse(format!(
                "Azure OpenAI stream error: {message}"
            )));
        }
        let real = head.object.as_deref() == Some("chat.completion.chunk")
            && head.id.is_some_and(|id| !id.is_empty());
        if real {
            out.push(data_event(ev.data.as_bytes()));
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.done {
            Ok(())
        } else {
            Err(TranslateError::BadResponse(
                "stream ended without [DONE]".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::sse::SseDecoder;

    /// A stream as Azure sends it: the prompt-filter annotation first, then
    /// chunks with `content_filter_results`, the usage chunk, `[DONE]`.
    const AZURE_STREAM: &str = concat!(
        "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"}}}]}\n\n",
        "data: {\"choices\":[{\"content_filter_results\":{},\"delta\":{\"content\":\"\",\"role\":\"assistant\"},\"finish_reason\":null,\"index\":0}],\"created\":1727000000,\"id\":\"chatcmpl-A1\",\"model\":\"gpt-4o-2024-08-06\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_1\"}\n\n",
        "data: {\"choices\":[{\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"}},\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null,\"index\":0}],\"created\":1727000000,\"id\":\"chatcmpl-A1\",\"model\":\"gpt-4o-2024-08-06\",\"object\":\"chat.completion.chunk\"}\n\n",
        "data: {\"choices\":[{\"content_filter_offsets\":{\"check_offset\":0,\"start_offset\":0,\"end_offset\":5},\"content_filter_results\":{},\"delta\":{},\"finish_reason\":null,\"index\":0}],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\"}\n\n",
        "data: {\"choices\":[{\"content_filter_results\":{},\"delta\":{},\"finish_reason\":\"stop\",\"index\":0}],\"created\":1727000000,\"id\":\"chatcmpl-A1\",\"model\":\"gpt-4o-2024-08-06\",\"object\":\"chat.completion.chunk\"}\n\n",
        "data: {\"choices\":[],\"created\":1727000000,\"id\":\"chatcmpl-A1\",\"model\":\"gpt-4o-2024-08-06\",\"object\":\"chat.completion.chunk\",\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":9,\"total_tokens\":11}}\n\n",
        "data: [DONE]\n\n",
    );

    fn run(text: &str) -> (Vec<String>, Result<(), TranslateError>) {
        let mut s = AzureStream::new();
        let mut out = Vec::new();
        for ev in SseDecoder::new().decode(text.as_bytes()) {
            if let Err(e) = s.on_event(&ev, &mut out) {
                return (frames(&out), Err(e));
            }
        }
        let end = s.finish(&mut out);
        (frames(&out), end)
    }

    fn frames(out: &[Bytes]) -> Vec<String> {
        out.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn passes_real_chunks_and_drops_filter_annotations() {
        let (frames, end) = run(AZURE_STREAM);
        assert!(end.is_ok());
        assert_eq!(frames.len(), 5, "{frames:?}");
        for f in &frames[..4] {
            assert!(f.starts_with("data: {") && f.ends_with("}\n\n"), "{f}");
            let v: serde_json::Value =
                serde_json::from_str(f.trim_start_matches("data: ").trim()).unwrap();
            assert_eq!(v["object"], "chat.completion.chunk");
            assert_eq!(v["id"], "chatcmpl-A1");
        }
        assert!(frames[1].contains("\"Hello\""));
        assert!(frames[3].contains("\"usage\""));
        assert_eq!(frames[4], "data: [DONE]\n\n");
    }

    #[test]
    fn broken_streams_are_errors() {
        let cut = AZURE_STREAM.replace("data: [DONE]\n\n", "");
        let (_, end) = run(&cut);
        assert!(matches!(end, Err(TranslateError::BadResponse(m)) if m.contains("[DONE]")));
        let (frames, end) = run(concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"index\":0}],\"created\":1,\"id\":\"c\",\"model\":\"m\",\"object\":\"chat.completion.chunk\"}\n\n",
            "data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\"}}\n\n",
        ));
        assert_eq!(frames.len(), 1);
        assert!(
            matches!(end, Err(TranslateError::BadResponse(m)) if m.contains("server had an error"))
        );
        let (_, end) = run("data: not json\n\n");
        assert!(matches!(end, Err(TranslateError::BadResponse(_))));
    }
}
