//! Search result entries (RFC 4511 §4.5.2) written as BER straight from their attributes. A
//! directory search of one user spent a tenth of its time building `ldap3_proto`'s message
//! and tag trees for each entry and encoding those; entries are the only answer sent in
//! bulk, so they alone are written here (every other answer goes through `ldap3_proto`, and
//! the tests below decode these with it). Also the one thing read here: the length of the
//! next request, known from its first bytes, so a request too large is refused before it is
//! buffered.

use bytes::{BufMut, BytesMut};

/// The universal and application tags an entry uses.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
/// `[APPLICATION 4]`, constructed: SearchResultEntry.
const SEARCH_RESULT_ENTRY: u8 = 0x64;
const BOOLEAN: u8 = 0x01;
/// `[0]`, constructed: an LDAPMessage's controls.
const CONTROLS: u8 = 0xA0;

/// What the first bytes of a request say about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Not enough bytes yet to know its length.
    Unknown,
    /// It is this many bytes long, header included.
    Len(usize),
    /// Not an LDAPMessage: not a SEQUENCE, or an indefinite or absurd length.
    Malformed,
}

/// The length of the LDAPMessage that `buf` begins with (RFC 4511 section 5.1: definite
/// lengths only).
pub(crate) fn frame(buf: &[u8]) -> Frame {
    let (Some(&tag), Some(&first)) = (buf.first(), buf.get(1)) else {
        return Frame::Unknown;
    };
    if tag != SEQUENCE {
        return Frame::Malformed;
    }
    if first < 0x80 {
        return Frame::Len(2 + usize::from(first));
    }
    let n = usize::from(first & 0x7F);
    // 0x80 is the indefinite form; more than four length bytes is over 4 GiB.
    if n == 0 || n > 4 {
        return Frame::Malformed;
    }
    let Some(bytes) = buf.get(2..2 + n) else {
        return Frame::Unknown;
    };
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Frame::Len(2 + n + len)
}

/// One TLV at the start of `buf`: its tag and its contents, and what follows it; `None` when
/// it is not a whole definite-length TLV.
fn tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The OIDs of the controls a whole LDAPMessage marks critical (RFC 4511 §4.1.11), read from
/// its bytes: the protocol crate keeps no criticality for some controls it parses (server-side
/// sorting), and a critical control not applied must stop the operation.
pub(crate) fn critical_controls(msg: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((SEQUENCE, body, _)) = tlv(msg) else {
        return out;
    };
    // messageID, protocolOp, then [0] Controls.
    let Some((_, _, body)) = tlv(body) else {
        return out;
    };
    let Some((_, _, body)) = tlv(body) else {
        return out;
    };
    let Some((CONTROLS, mut controls, _)) = tlv(body) else {
        return out;
    };
    while let Some((SEQUENCE, control, rest)) = tlv(controls) {
        controls = rest;
        let Some((OCTET_STRING, oid, after)) = tlv(control) else {
            continue;
        };
        if let Some((BOOLEAN, flag, _)) = tlv(after)
            && flag.iter().any(|b| *b != 0)
        {
            out.push(String::from_utf8_lossy(oid).into_owned());
        }
    }
    out
}

/// Bytes of a definite length's encoding.
fn length_size(n: usize) -> usize {
    if n < 0x80 {
        1
    } else {
        1 + (usize::BITS - n.leading_zeros()).div_ceil(8) as usize
    }
}

/// Bytes of a whole tag-length-value with `n` bytes of content.
fn tlv_size(n: usize) -> usize {
    1 + length_size(n) + n
}

fn put_header(out: &mut BytesMut, tag: u8, n: usize) {
    out.put_u8(tag);
    if n < 0x80 {
        out.put_u8(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = (n.leading_zeros() / 8) as usize;
        out.put_u8(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn put_octets(out: &mut BytesMut, value: &[u8]) {
    put_header(out, OCTET_STRING, value.len());
    out.extend_from_slice(value);
}

/// An INTEGER's content: the shortest two's complement form.
fn integer(v: i32) -> ([u8; 4], usize) {
    let bytes = v.to_be_bytes();
    let mut skip = 0;
    while skip < 3 {
        let (b, next) = (bytes[skip], bytes[skip + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            skip += 1;
        } else {
            break;
        }
    }
    (bytes, skip)
}

/// Appends the SearchResultEntry message `id` for `dn` with these attributes (values left out
/// when `types_only`).
pub(crate) fn entry<'a>(
    out: &mut BytesMut,
    id: i32,
    dn: &str,
    attributes: &[(&'a str, &'a [String])],
    types_only: bool,
) {
    let values_size = |values: &[String]| -> usize {
        match types_only {
            true => 0,
            false => values.iter().map(|v| tlv_size(v.len())).sum(),
        }
    };
    let attribute_size =
        |(name, values): &(&str, &[String])| tlv_size(name.len()) + tlv_size(values_size(values));
    let attributes_size: usize = attributes.iter().map(|a| tlv_size(attribute_size(a))).sum();
    let op_size = tlv_size(dn.len()) + tlv_size(attributes_size);
    let (id_bytes, skip) = integer(id);
    let id_size = id_bytes.len() - skip;
    let message_size = tlv_size(id_size) + tlv_size(op_size);
    out.reserve(tlv_size(message_size));
    put_header(out, SEQUENCE, message_size);
    put_header(out, INTEGER, id_size);
    out.extend_from_slice(&id_bytes[skip..]);
    put_header(out, SEARCH_RESULT_ENTRY, op_size);
    put_octets(out, dn.as_bytes());
    put_header(out, SEQUENCE, attributes_size);
    for a in attributes {
        put_header(out, SEQUENCE, attribute_size(a));
        put_octets(out, a.0.as_bytes());
        put_header(out, SET, values_size(a.1));
        if !types_only {
            for v in a.1 {
                put_octets(out, v.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::LdapCodec;
    use ldap3_proto::proto::{LdapMsg, LdapOp, LdapPartialAttribute, LdapSearchResultEntry};
    use tokio_util::codec::{Decoder, Encoder};

    type Attribute = (String, Vec<String>);

    /// `n` constructed elements, each inside the one before (a filter of `n` nested NOTs).
    fn nested(n: usize) -> Vec<u8> {
        let mut inner = vec![0x87, 0x01, b'x'];
        for _ in 0..n {
            let mut out = BytesMut::new();
            put_header(&mut out, 0xA2, inner.len());
            out.extend_from_slice(&inner);
            inner = out.to_vec();
        }
        let mut msg = BytesMut::new();
        put_header(&mut msg, SEQUENCE, inner.len() + 3);
        msg.extend_from_slice(&[INTEGER, 0x01, 0x01]);
        msg.extend_from_slice(&inner);
        msg.to_vec()
    }

    #[test]
    fn deeply_nested_requests_are_refused_without_recursing_through_them() {
        for n in [200, 10_000, 100_000] {
            let msg = nested(n);
            assert_eq!(frame(&msg), Frame::Len(msg.len()));
            let mut buf = BytesMut::from(&msg[..]);
            let decoded = LdapCodec::new(Some(msg.len()), None).decode(&mut buf);
            assert!(decoded.is_err(), "{n} levels");
        }
    }

    proptest::proptest! {
        /// Any bytes: the frame reader and the codec answer or refuse, never panic.
        #[test]
        fn any_bytes_are_framed_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = frame(&bytes);
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = LdapCodec::new(Some(1 << 16), None).decode(&mut buf);
        }
    }

    #[test]
    fn critical_controls_are_read_from_the_message_bytes() {
        use ldap3_proto::LdapCodec;
        use ldap3_proto::control::LdapControl;
        use ldap3_proto::proto::{LdapMsg, LdapOp};
        use tokio_util::codec::Encoder;
        let encode = |ctrl: Vec<LdapControl>| {
            let mut out = BytesMut::new();
            let msg = LdapMsg::new_with_ctrls(7, LdapOp::UnbindRequest, ctrl);
            LdapCodec::new(None, None).encode(msg, &mut out).unwrap();
            out
        };
        let unknown = |oid: &str, criticality| LdapControl::Unknown {
            oid: oid.into(),
            criticality,
            value: None,
        };
        assert!(critical_controls(&encode(vec![])).is_empty());
        let both = encode(vec![
            unknown("1.2.3", false),
            unknown("1.2.840.113556.1.4.473", true),
        ]);
        assert_eq!(critical_controls(&both), ["1.2.840.113556.1.4.473"]);
        // Cut short or not a message: nothing, and no panic.
        for n in 0..both.len() {
            let _ = critical_controls(&both[..n]);
        }
        assert!(critical_controls(b"\x04\x00").is_empty());
    }

    #[test]
    fn a_requests_length_is_read_from_its_first_bytes() {
        for n in [0usize, 5, 127, 128, 300, 70_000, 1 << 24] {
            let mut out = BytesMut::new();
            put_header(&mut out, SEQUENCE, n);
            let head = out.len();
            assert_eq!(frame(&out), Frame::Len(head + n), "{n}");
            assert_eq!(frame(&out[..head - 1]), Frame::Unknown, "{n}");
        }
        assert_eq!(frame(&[]), Frame::Unknown);
        assert_eq!(frame(&[0x30]), Frame::Unknown);
        assert_eq!(frame(&[0x31, 0x00]), Frame::Malformed);
        assert_eq!(frame(b"GET / HTTP/1.1"), Frame::Malformed);
        assert_eq!(frame(&[0x30, 0x80]), Frame::Malformed);
        assert_eq!(frame(&[0x30, 0x85, 1, 1, 1, 1, 1]), Frame::Malformed);
        assert_eq!(frame(&[0x30, 0x84, 0xFF, 0xFF]), Frame::Unknown);
        assert_eq!(
            frame(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]),
            Frame::Len(6 + 0xFFFF_FFFF)
        );
    }

    fn decoded(mut bytes: BytesMut) -> LdapMsg {
        let msg = LdapCodec::new(Some(1 << 24), None)
            .decode(&mut bytes)
            .unwrap()
            .expect("a whole message");
        assert!(bytes.is_empty(), "one message, nothing after it");
        msg
    }

    #[test]
    fn entries_decode_as_the_protocol_crate_writes_them() {
        let long = |n: usize| "x".repeat(n);
        let cases: Vec<(i32, String, Vec<Attribute>)> = vec![
            (1, "uid=a,ou=people,dc=p,dc=scimd".into(), vec![]),
            (
                127,
                "uid=b".into(),
                vec![
                    ("cn".into(), vec!["Bé Ünïcode".into()]),
                    ("mail".into(), vec!["a@x".into(), "b@x".into()]),
                    ("empty".into(), vec![]),
                ],
            ),
            // Lengths around the short form's end and every long form a value reaches.
            (128, long(127), vec![("a".into(), vec![long(128)])]),
            (
                255,
                long(200),
                vec![("b".into(), vec![long(255), long(256)])],
            ),
            (
                65_535,
                "uid=c".into(),
                vec![("c".into(), vec![long(65_536)])],
            ),
            (
                i32::MAX,
                "uid=d".into(),
                vec![(
                    "member".into(),
                    (0..3000).map(|i| format!("uid=u{i}")).collect(),
                )],
            ),
        ];
        for (id, dn, attrs) in cases {
            for types_only in [false, true] {
                let borrowed: Vec<(&str, &[String])> = attrs
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_slice()))
                    .collect();
                let mut ours = BytesMut::new();
                entry(&mut ours, id, &dn, &borrowed, types_only);
                let expected = LdapMsg::new(
                    id,
                    LdapOp::SearchResultEntry(LdapSearchResultEntry {
                        dn: dn.clone(),
                        attributes: attrs
                            .iter()
                            .map(|(n, v)| LdapPartialAttribute {
                                atype: n.clone(),
                                vals: match types_only {
                                    true => Vec::new(),
                                    false => v.iter().map(|s| s.clone().into_bytes()).collect(),
                                },
                            })
                            .collect(),
                    }),
                );
                let mut theirs = BytesMut::new();
                LdapCodec::new(None, None)
                    .encode(expected.clone(), &mut theirs)
                    .unwrap();
                assert_eq!(
                    decoded(ours.clone()),
                    expected,
                    "id {id}, {} attributes",
                    attrs.len()
                );
                assert_eq!(ours, theirs, "the same bytes, id {id}");
            }
        }
    }

    #[test]
    fn integers_and_lengths_take_their_shortest_form() {
        let int = |v: i32| {
            let (b, skip) = integer(v);
            b[skip..].to_vec()
        };
        assert_eq!(int(0), [0x00]);
        assert_eq!(int(127), [0x7F]);
        assert_eq!(int(128), [0x00, 0x80]);
        assert_eq!(int(256), [0x01, 0x00]);
        assert_eq!(int(-1), [0xFF]);
        assert_eq!(int(-129), [0xFF, 0x7F]);
        assert_eq!(int(i32::MAX), [0x7F, 0xFF, 0xFF, 0xFF]);
        for (n, header) in [
            (0usize, vec![0x04, 0x00]),
            (127, vec![0x04, 0x7F]),
            (128, vec![0x04, 0x81, 0x80]),
            (255, vec![0x04, 0x81, 0xFF]),
            (256, vec![0x04, 0x82, 0x01, 0x00]),
            (65_536, vec![0x04, 0x83, 0x01, 0x00, 0x00]),
        ] {
            let mut out = BytesMut::new();
            put_header(&mut out, OCTET_STRING, n);
            assert_eq!(&out[..], &header[..], "length {n}");
            assert_eq!(tlv_size(n), header.len() + n);
        }
    }
}
