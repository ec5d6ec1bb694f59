//! `server.compression`: whether the gateway compresses its answers, from
//! what size, how hard and in which encodings. Off unless the policy has
//! the block.
//!
//! Place in the pipeline: read by `validate` with the rest of `server:`;
//! the edge's compression step (`server::edge::compress`) turns it into a
//! layer when a policy is built. Off by default because compressing costs
//! far more CPU than the gateway spends on a request: a 2 KB chat answer
//! took 32 us of gateway CPU plain, 46 us gzipped and 62 us as zstd (at
//! the encoders' default levels), and a 2,048-vector embedding answer
//! (3.3 MB of JSON) takes about 170 ms to gzip at the default level, where
//! passing it through takes about 1 ms. Worth it only where the network
//! between clients and the gateway is slower than that. Must not know HTTP.

use super::fields::FieldReader;
use super::report::Loc;

/// Answers smaller than this are sent as they are when the policy names no
/// `min_bytes`: below it an encoder's setup costs more than the bytes
/// saved.
pub const DEFAULT_MIN_COMPRESSED_BYTES: u64 = 1024;

/// How hard the encoders work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionLevel {
    /// The fastest level of each encoder (gzip 1, brotli 0, zstd 1): the default.
    Fastest,
    /// Each encoder's own default (gzip 6, brotli 4, zstd 3).
    Default,
    /// The smallest output (gzip 9, brotli 11, zstd 22): slow, for slow links.
    Best,
}

/// `server.compression` as validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionSettings {
    /// Answers of a known size below this are sent as they are.
    pub min_bytes: u64,
    pub level: CompressionLevel,
    /// Encodings the gateway may answer in (the client chooses among them).
    pub gzip: bool,
    pub br: bool,
    pub zstd: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompression {
    pub min_bytes: Option<u64>,
    pub level: Option<String>,
    pub encodings: Option<Vec<String>>,
}

/// The encodings the gateway can compress with, as `encodings` names them.
const ENCODINGS: [&str; 3] = ["gzip", "br", "zstd"];

/// `server.compression`, every problem at its line; `None` when the policy
/// has no such block (answers are never compressed).
pub(super) fn compression_settings(
    cx: &mut FieldReader,
    loc: &Loc,
    raw: &Option<RawCompression>,
) -> Option<CompressionSettings> {
    let raw = raw.as_ref()?;
    let level = match raw.level.as_deref() {
        None | Some("fastest") => CompressionLevel::Fastest,
        Some("default") => CompressionLevel::Default,
        Some("best") => CompressionLevel::Best,
        Some(other) => {
            cx.errors.at(
                &loc.field("level"),
                format!("{other:?} is not a level: use fastest, default or best"),
            );
            CompressionLevel::Fastest
        }
    };
    let mut settings = CompressionSettings {
        min_bytes: raw.min_bytes.unwrap_or(DEFAULT_MIN_COMPRESSED_BYTES),
        level,
        gzip: true,
        br: true,
        zstd: true,
    };
    if let Some(list) = &raw.encodings {
        let list_loc = loc.field("encodings");
        if list.is_empty() {
            cx.errors.at(
                &list_loc,
                format!(
                    "must list at least one of {}; leave out server.compression to send \
                     answers uncompressed",
                    ENCODINGS.join(", ")
                ),
            );
        }
        (settings.gzip, settings.br, settings.zstd) = (false, false, false);
        for (i, name) in list.iter().enumerate() {
            let flag = match name.to_ascii_lowercase().as_str() {
                "gzip" => &mut settings.gzip,
                "br" => &mut settings.br,
                "zstd" => &mut settings.zstd,
                _ => {
                    let known = ENCODINGS.join(", ");
                    cx.errors.at(
                        &list_loc.index(i),
                        format!("{name:?} is not an encoding the gateway compresses with: use one of {known}"),
                    );
                    continue;
                }
            };
            if *flag {
                cx.errors
                    .at(&list_loc.index(i), format!("{name:?} is listed twice"));
            }
            *flag = true;
        }
    }
    Some(settings)
}
