//! Tests of the walk made while an answer arrives: in chunks of any size,
//! small or large, an answer is taken or refused exactly as when walked
//! whole and goes out as the same bytes, and a long member cut into many
//! chunks is walked again only a bounded number of times.

use bytes::Bytes;

use super::super::super::EncodingFormat;
use super::super::tests::{BASE64, FLOAT, scan};
use super::Prescan;

/// A bigger answer: items with members in any order, white space, a
/// member the scan does not know (long, so pieces cut it), `usage` first.
fn bigger(items: usize, format: EncodingFormat) -> String {
    let mut data = Vec::new();
    for i in 0..items {
        let vector = match format {
            EncodingFormat::Float => format!("[{}, -0.{i}e-2,3]", i as f32 / 7.0),
            EncodingFormat::Base64 => "\"AACAPwAAAEA=\"".to_string(),
        };
        data.push(if i % 2 == 0 {
            format!(r#"{{"object":"embedding","index":{i},"embedding":{vector}}}"#)
        } else {
            format!(r#"{{ "embedding" : {vector} , "index" : {i} }}"#)
        });
    }
    let note = "x".repeat(300);
    format!(
        r#"{{"usage":{{"prompt_tokens":5,"total_tokens":5}}, "note":"{note}","object":"list","data":[{}],"model":"m"}}"#,
        data.join(",")
    )
}

#[test]
fn an_answer_scanned_as_it_arrives_is_taken_or_refused_as_when_scanned_whole() {
    let mut rng = fastrand::Rng::with_seed(24);
    let mut bodies: Vec<(String, usize, EncodingFormat)> = vec![
        (FLOAT.to_string(), 2, EncodingFormat::Float),
        (BASE64.to_string(), 2, EncodingFormat::Base64),
        (bigger(40, EncodingFormat::Float), 40, EncodingFormat::Float),
        (
            bigger(40, EncodingFormat::Base64),
            40,
            EncodingFormat::Base64,
        ),
        (
            r#"{"object":"list","data":[],"usage":{}}"#.to_string(),
            0,
            EncodingFormat::Float,
        ),
    ];
    // Each changed at random: a byte dropped, replaced or doubled.
    let changes = b"{}[],:\" 0-e1.\\x";
    for k in 0..bodies.len() {
        for _ in 0..60 {
            let (body, n, f) = bodies[k].clone();
            let mut b = body.into_bytes();
            let at = rng.usize(..b.len());
            match rng.u8(..3) {
                0 => drop(b.remove(at)),
                1 => b[at] = changes[rng.usize(..changes.len())],
                _ => b.insert(at, b[at]),
            }
            if let Ok(text) = String::from_utf8(b) {
                bodies.push((text, n, f));
            }
        }
    }
    let mut taken = 0;
    for (body, expected, format) in &bodies {
        let whole = scan(Bytes::copy_from_slice(body.as_bytes()), *expected, *format);
        taken += usize::from(whole.is_some());
        for _ in 0..20 {
            let mut p = Prescan::new(*expected, *format);
            let mut end = 0;
            let mut cuts = Vec::new();
            while end < body.len() {
                let start = end;
                end = (end + 1 + rng.usize(..body.len().min(200))).min(body.len());
                p.feed(Bytes::copy_from_slice(&body.as_bytes()[start..end]));
                cuts.push(end);
            }
            let pieces = p.finish().ok();
            assert_eq!(pieces, whole, "{body} cut at {cuts:?}");
            // Sent as it came: the same bytes whatever the cuts.
            if let Some(r) = pieces {
                assert_eq!(
                    r.into_parts("m").concat(),
                    whole.clone().unwrap().into_parts("m").concat()
                );
            }
        }
    }
    // Both kinds are in the set: the changed answers are mostly refused.
    assert!(
        taken >= 5 && taken < bodies.len() / 2,
        "{taken} of {}",
        bodies.len()
    );
}

#[test]
fn a_long_member_cut_into_many_pieces_is_walked_again_a_bounded_number_of_times() {
    // One top-level member of 1 MB arriving 1 KB at a time: a try only
    // when what is not walked has doubled, about log2(1000) of them.
    let big = format!(
        r#"{{"note":"{}","data":[],"usage":{{}}}}"#,
        "y".repeat(1 << 20)
    );
    let mut p = Prescan::new(0, EncodingFormat::Float);
    let mut tries = 0;
    let mut end = 0;
    while end < big.len() {
        let start = end;
        end = (end + 1024).min(big.len());
        let before = p.next_try;
        p.feed(Bytes::copy_from_slice(&big.as_bytes()[start..end]));
        tries += usize::from(p.next_try != before);
    }
    assert!(tries <= 12, "{tries} tries");
    assert!(p.finish().is_ok());
}

/// Answers of megabytes cut where an upstream connection might cut them
/// (chunks of a few bytes to tens of kilobytes), with vectors both shorter
/// and longer than the first copy after a cut: walked as when whole.
#[test]
fn a_big_answer_in_big_chunks_is_walked_as_when_whole() {
    let mut rng = fastrand::Rng::with_seed(7);
    for format in [EncodingFormat::Float, EncodingFormat::Base64] {
        let items: Vec<String> = (0..300)
            .map(|i| {
                // Every tenth vector 12-20 KB, the rest 1-2 KB.
                let n = if i % 10 == 3 { 1500 } else { 150 } + i;
                let vector = match format {
                    EncodingFormat::Float => format!(
                        "[{}]",
                        (0..n)
                            .map(|k| format!("{:.6}", k as f32 / 7.0))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    EncodingFormat::Base64 => format!("\"{}\"", "AACAPwAAAEA=".repeat(n / 8 + 1)),
                };
                format!(r#"{{"object":"embedding","index":{i},"embedding":{vector}}}"#)
            })
            .collect();
        let body = format!(
            r#"{{"object":"list","data":[{}],"model":"up","usage":{{"prompt_tokens":9,"total_tokens":9}}}} "#,
            items.join(",")
        );
        let whole = scan(Bytes::copy_from_slice(body.as_bytes()), 300, format).expect("taken");
        let sent = whole.clone().into_parts("m").concat();
        for largest in [64, 3_000, 40_000, 300_000] {
            let mut p = Prescan::new(300, format);
            let mut end = 0;
            while end < body.len() {
                let start = end;
                end = (end + 1 + rng.usize(..largest)).min(body.len());
                p.feed(Bytes::copy_from_slice(&body.as_bytes()[start..end]));
            }
            let got = p.finish().expect("taken in chunks");
            assert_eq!(got, whole, "chunks up to {largest}");
            assert_eq!(got.into_parts("m").concat(), sent, "chunks up to {largest}");
        }
    }
}
