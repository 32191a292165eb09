//! The poll of a feed its receiver pulls (RFC 8936): what a request may say and what an answer
//! looks like. Pure; the endpoint is `http::feeds`.

use serde_json::{Map, Value, json};

/// Events one answer carries when the receiver does not say (`maxEvents`), and at most.
pub(crate) const DEFAULT_EVENTS: usize = 100;
pub(crate) const MOST_EVENTS: usize = 1000;

/// A poll request (RFC 8936 §2.4).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Request {
    /// How many tokens to send at most (0: only acknowledge).
    pub(crate) max_events: usize,
    /// Answer at once even with nothing to send (else wait for events a while: long poll).
    pub(crate) return_immediately: bool,
    /// Token ids the receiver took.
    pub(crate) ack: Vec<String>,
    /// Token ids the receiver refused, with its reason (`err`, `description`).
    pub(crate) set_errs: Vec<(String, String)>,
}

impl Request {
    /// Reads a request body; an empty one is a plain poll. The error is an RFC 8936 error
    /// description.
    pub(crate) fn parse(body: &[u8]) -> Result<Request, String> {
        let mut r = Request {
            max_events: DEFAULT_EVENTS,
            ..Request::default()
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(r);
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| format!("the request body is not JSON: {e}"))?;
        let Value::Object(o) = v else {
            return Err("the request body is a JSON object".into());
        };
        for (k, v) in &o {
            match k.as_str() {
                "maxEvents" => {
                    let n = v
                        .as_u64()
                        .ok_or("maxEvents is a number of events, 0 or more")?;
                    r.max_events = usize::try_from(n).unwrap_or(MOST_EVENTS).min(MOST_EVENTS);
                }
                "returnImmediately" => {
                    r.return_immediately =
                        v.as_bool().ok_or("returnImmediately is true or false")?
                }
                "ack" => r.ack = strings(v).ok_or("ack is an array of jti values")?,
                "setErrs" => {
                    let errs = v
                        .as_object()
                        .ok_or("setErrs is an object of jti values and their errors")?;
                    for (jti, e) in errs {
                        let why = format!(
                            "{} {}",
                            e["err"].as_str().unwrap_or_default(),
                            e["description"].as_str().unwrap_or_default()
                        );
                        r.set_errs.push((jti.clone(), why.trim().to_string()));
                    }
                }
                // Members this server does not know are left alone (RFC 8936 §2.4).
                _ => {}
            }
        }
        Ok(r)
    }

    /// Every token id the receiver is done with (taken or refused).
    pub(crate) fn handled(&self) -> impl Iterator<Item = &str> {
        self.ack
            .iter()
            .map(String::as_str)
            .chain(self.set_errs.iter().map(|(j, _)| j.as_str()))
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(String::from))
        .collect()
}

/// An answer: the tokens by id, and whether more are waiting.
pub(crate) fn answer(sets: Vec<(String, String)>, more: bool) -> Value {
    let sets: Map<String, Value> = sets.into_iter().map(|(k, v)| (k, json!(v))).collect();
    json!({"sets": sets, "moreAvailable": more})
}

/// An error answer (RFC 8936 §2.6).
pub(crate) fn error(description: &str) -> Value {
    json!({"err": "invalid_request", "description": description})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_rfc_8936_writes_them() {
        let r = Request::parse(b"").unwrap();
        assert_eq!(r.max_events, DEFAULT_EVENTS);
        assert!(!r.return_immediately);
        let r = Request::parse(
            br#"{"maxEvents": 5000, "returnImmediately": true, "ack": ["1-2", "1-3"],
                 "setErrs": {"1-4": {"err": "jwtAud", "description": "wrong audience"}},
                 "other": 1}"#,
        )
        .unwrap();
        assert_eq!(r.max_events, MOST_EVENTS);
        assert!(r.return_immediately);
        assert_eq!(r.handled().collect::<Vec<_>>(), ["1-2", "1-3", "1-4"]);
        assert_eq!(r.set_errs[0].1, "jwtAud wrong audience");
        assert_eq!(
            Request::parse(br#"{"maxEvents": 0}"#).unwrap().max_events,
            0
        );
        for bad in [
            &b"[1]"[..],
            b"{",
            br#"{"maxEvents": -1}"#,
            br#"{"ack": "1-2"}"#,
            br#"{"ack": [1]}"#,
            br#"{"returnImmediately": "yes"}"#,
            br#"{"setErrs": []}"#,
        ] {
            assert!(
                Request::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            answer(vec![("1-2".into(), "a.b.c".into())], true),
            json!({"sets": {"1-2": "a.b.c"}, "moreAvailable": true})
        );
    }
}
