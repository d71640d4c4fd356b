//! CHAP authentication (RFC 7143 §12.1.3, RFC 1994), target side, sans-IO.
//!
//! The caller supplies the identifier and challenge bytes (from its CSPRNG) and looks
//! secrets up; this module picks the algorithm, formats the keys, checks the
//! initiator's response and answers a mutual challenge. MD5 (5) is the RFC's; SHA-1 (6),
//! SHA-256 (7) and SHA3-256 (8) are what recent Linux initiators and targets offer.

use crate::text::Pair;
use base64::Engine;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use sha3::Sha3_256;

/// A CHAP hash algorithm (`CHAP_A`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChapAlgorithm {
    /// 5: MD5.
    Md5,
    /// 6: SHA-1.
    Sha1,
    /// 7: SHA-256.
    Sha256,
    /// 8: SHA3-256.
    Sha3_256,
}

impl ChapAlgorithm {
    /// The `CHAP_A` number.
    pub fn code(self) -> u8 {
        match self {
            ChapAlgorithm::Md5 => 5,
            ChapAlgorithm::Sha1 => 6,
            ChapAlgorithm::Sha256 => 7,
            ChapAlgorithm::Sha3_256 => 8,
        }
    }

    /// From a `CHAP_A` number.
    pub fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            5 => ChapAlgorithm::Md5,
            6 => ChapAlgorithm::Sha1,
            7 => ChapAlgorithm::Sha256,
            8 => ChapAlgorithm::Sha3_256,
            _ => return None,
        })
    }

    /// Digest length in bytes: also the challenge length we send.
    pub fn digest_len(self) -> usize {
        match self {
            ChapAlgorithm::Md5 => 16,
            ChapAlgorithm::Sha1 => 20,
            ChapAlgorithm::Sha256 | ChapAlgorithm::Sha3_256 => 32,
        }
    }

    /// Every algorithm, strongest first.
    pub const ALL: [ChapAlgorithm; 4] = [
        ChapAlgorithm::Sha3_256,
        ChapAlgorithm::Sha256,
        ChapAlgorithm::Sha1,
        ChapAlgorithm::Md5,
    ];
}

/// Why CHAP failed; every variant fails the login with "authentication failure" (0x0201),
/// except [`ChapError::Malformed`] and [`ChapError::NoCommonAlgorithm`], which are initiator
/// errors (0x0200).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChapError {
    /// No algorithm in `CHAP_A` that we support.
    #[error("no common CHAP algorithm in {0:?}")]
    NoCommonAlgorithm(String),
    /// A key is missing or badly encoded.
    #[error("malformed CHAP key {0}")]
    Malformed(&'static str),
    /// The user name has no account here.
    #[error("unknown CHAP user {0:?}")]
    UnknownUser(String),
    /// The response does not match.
    #[error("CHAP response mismatch for user {0:?}")]
    BadResponse(String),
    /// The initiator sent our own challenge back (a reflection attack).
    #[error("reflected CHAP challenge")]
    ReflectedChallenge,
    /// The initiator's challenge is too short or too long.
    #[error("CHAP challenge of {0} bytes is out of range")]
    ChallengeLength(usize),
    /// Mutual CHAP was asked for but the target has no outgoing account.
    #[error("mutual CHAP requested but no outgoing account is set")]
    NoOutgoingAccount,
}

/// Shortest challenge we accept from an initiator for mutual CHAP: RFC 7143 §12.1.3
/// wants challenges hard to guess; 16 bytes is what open-iscsi and libiscsi send.
pub const MIN_CHALLENGE_LEN: usize = 16;
/// Longest binary value RFC 7143 §12.1.3 allows in CHAP_C/CHAP_R (1024 bytes).
pub const MAX_CHALLENGE_LEN: usize = 1024;

/// `H(id || secret || challenge)` with `alg` (RFC 1994 §4.1).
pub fn chap_response(alg: ChapAlgorithm, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
    fn h<D: Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        let mut d = D::new();
        d.update([id]);
        d.update(secret);
        d.update(challenge);
        d.finalize().to_vec()
    }
    match alg {
        ChapAlgorithm::Md5 => h::<Md5>(id, secret, challenge),
        ChapAlgorithm::Sha1 => h::<Sha1>(id, secret, challenge),
        ChapAlgorithm::Sha256 => h::<Sha256>(id, secret, challenge),
        ChapAlgorithm::Sha3_256 => h::<Sha3_256>(id, secret, challenge),
    }
}

/// Encode binary as RFC 7143 §6.1 hex (`0x...`).
pub fn encode_binary(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + b.len() * 2);
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Decode a binary value: `0x`/`0X` hex or `0b`/`0B` base64 (RFC 7143 §6.1).
pub fn decode_binary(v: &str) -> Option<Vec<u8>> {
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        // An odd number of digits has an implied leading zero.
        let padded = if hex.len() % 2 == 1 {
            format!("0{hex}")
        } else {
            hex.to_string()
        };
        (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(padded.get(i..i + 2)?, 16).ok())
            .collect()
    } else if let Some(b64) = v.strip_prefix("0b").or_else(|| v.strip_prefix("0B")) {
        base64::engine::general_purpose::STANDARD.decode(b64).ok()
    } else {
        None
    }
}

/// Pick the first algorithm of the initiator's `CHAP_A` list that we support.
pub fn select_algorithm(
    offer: &str,
    supported: &[ChapAlgorithm],
) -> Result<ChapAlgorithm, ChapError> {
    offer
        .split(',')
        .filter_map(|c| c.trim().parse::<u32>().ok())
        .filter_map(ChapAlgorithm::from_code)
        .find(|a| supported.contains(a))
        .ok_or_else(|| ChapError::NoCommonAlgorithm(offer.to_string()))
}

/// The target's challenge in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChapChallenge {
    /// Chosen algorithm.
    pub algorithm: ChapAlgorithm,
    /// Identifier sent.
    pub id: u8,
    /// Challenge bytes sent.
    pub challenge: Vec<u8>,
}

impl ChapChallenge {
    /// The keys answering `CHAP_A`: `CHAP_A`, `CHAP_I`, `CHAP_C`.
    pub fn keys(&self) -> Vec<Pair> {
        vec![
            ("CHAP_A".into(), self.algorithm.code().to_string()),
            ("CHAP_I".into(), self.id.to_string()),
            ("CHAP_C".into(), encode_binary(&self.challenge)),
        ]
    }

    /// Check the initiator's `CHAP_N`/`CHAP_R` against `secret_of(name)`; when the
    /// initiator also sent `CHAP_I`/`CHAP_C` (mutual CHAP), answer with the outgoing
    /// account `(name, secret)`. Returns the user name and the keys to send back.
    pub fn verify(
        &self,
        pairs: &[Pair],
        secret_of: impl Fn(&str) -> Option<Vec<u8>>,
        outgoing: Option<(&str, &[u8])>,
    ) -> Result<(String, Vec<Pair>), ChapError> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        let name = get("CHAP_N").ok_or(ChapError::Malformed("CHAP_N"))?;
        let resp = get("CHAP_R")
            .and_then(decode_binary)
            .ok_or(ChapError::Malformed("CHAP_R"))?;
        // An unknown user costs the same digest and comparison as a known one, so
        // the answer's timing does not tell which user names exist.
        let secret = secret_of(name);
        let expected = chap_response(
            self.algorithm,
            self.id,
            secret.as_deref().unwrap_or_default(),
            &self.challenge,
        );
        let matches = constant_time_eq(&expected, &resp);
        if secret.is_none() {
            return Err(ChapError::UnknownUser(name.to_string()));
        }
        if !matches {
            return Err(ChapError::BadResponse(name.to_string()));
        }
        let mut out = Vec::new();
        match (get("CHAP_I"), get("CHAP_C")) {
            (None, None) => {}
            (Some(i), Some(c)) => {
                let id: u8 = i.parse().map_err(|_| ChapError::Malformed("CHAP_I"))?;
                let ch = decode_binary(c).ok_or(ChapError::Malformed("CHAP_C"))?;
                if ch.len() < MIN_CHALLENGE_LEN || ch.len() > MAX_CHALLENGE_LEN {
                    return Err(ChapError::ChallengeLength(ch.len()));
                }
                if ch == self.challenge {
                    return Err(ChapError::ReflectedChallenge);
                }
                let (oname, osecret) = outgoing.ok_or(ChapError::NoOutgoingAccount)?;
                let r = chap_response(self.algorithm, id, osecret, &ch);
                out.push(("CHAP_N".into(), oname.to_string()));
                out.push(("CHAP_R".into(), encode_binary(&r)));
            }
            _ => return Err(ChapError::Malformed("CHAP_I/CHAP_C")),
        }
        Ok((name.to_string(), out))
    }
}

/// Compare two byte strings in time that depends only on their lengths, never on
/// where they first differ: a CHAP response or secret compared with `==` stops at the
/// first wrong byte, and the time it took tells an attacker how many leading bytes
/// were right. Lengths are not secret here (digest lengths are fixed by the
/// algorithm), so unequal lengths return at once.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        // black_box keeps the optimiser from turning the fold into an early exit.
        diff = std::hint::black_box(diff | (x ^ y));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<Pair> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"sesame-secret", b"sesame-secret"));
        assert!(!constant_time_eq(b"sesame-secret", b"sesame-secreT"));
        assert!(!constant_time_eq(b"Sesame-secret", b"sesame-secret"));
        assert!(!constant_time_eq(b"sesame", b"sesame-secret"));
        assert!(!constant_time_eq(b"", b"x"));
        // Every single-bit difference at every position is seen.
        let a = [0x5au8; 32];
        for i in 0..a.len() {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!constant_time_eq(&a, &b), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn md5_known_answer() {
        // RFC 1994 construction checked against an independent MD5: id 1, secret
        // "secret", challenge 00..0f.
        let ch: Vec<u8> = (0u8..16).collect();
        let r = chap_response(ChapAlgorithm::Md5, 1, b"secret", &ch);
        let mut input = vec![1u8];
        input.extend_from_slice(b"secret");
        input.extend_from_slice(&ch);
        assert_eq!(r, Md5::digest(&input).to_vec());
        assert_eq!(r.len(), 16);
        assert_eq!(chap_response(ChapAlgorithm::Sha256, 1, b"s", &ch).len(), 32);
        assert_eq!(
            chap_response(ChapAlgorithm::Sha3_256, 1, b"s", &ch).len(),
            32
        );
        assert_eq!(chap_response(ChapAlgorithm::Sha1, 1, b"s", &ch).len(), 20);
    }

    #[test]
    fn binary_encodings() {
        assert_eq!(decode_binary("0x0a0B"), Some(vec![0x0a, 0x0b]));
        assert_eq!(decode_binary("0xabc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(decode_binary("0bAQID"), Some(vec![1, 2, 3]));
        assert_eq!(decode_binary("12"), None);
        assert_eq!(decode_binary("0xzz"), None);
        assert_eq!(encode_binary(&[0, 255]), "0x00ff");
    }

    #[test]
    fn algorithm_choice() {
        let ours = ChapAlgorithm::ALL;
        assert_eq!(select_algorithm("7,5", &ours), Ok(ChapAlgorithm::Sha256));
        assert_eq!(select_algorithm("5", &ours), Ok(ChapAlgorithm::Md5));
        assert!(matches!(
            select_algorithm("9,x", &ours),
            Err(ChapError::NoCommonAlgorithm(_))
        ));
    }

    #[test]
    fn one_way_and_mutual() {
        let c = ChapChallenge {
            algorithm: ChapAlgorithm::Md5,
            id: 7,
            challenge: vec![9; 16],
        };
        assert_eq!(c.keys()[2].1, format!("0x{}", "09".repeat(16)));
        let good = encode_binary(&chap_response(
            ChapAlgorithm::Md5,
            7,
            b"sesame-secret",
            &[9; 16],
        ));
        let lookup = |n: &str| (n == "alice").then(|| b"sesame-secret".to_vec());
        let (user, out) = c
            .verify(
                &pairs(&[("CHAP_N", "alice"), ("CHAP_R", &good)]),
                lookup,
                None,
            )
            .unwrap();
        assert_eq!((user.as_str(), out.len()), ("alice", 0));
        assert_eq!(
            c.verify(
                &pairs(&[("CHAP_N", "alice"), ("CHAP_R", "0x00")]),
                lookup,
                None
            ),
            Err(ChapError::BadResponse("alice".into()))
        );
        assert_eq!(
            c.verify(
                &pairs(&[("CHAP_N", "bob"), ("CHAP_R", &good)]),
                lookup,
                None
            ),
            Err(ChapError::UnknownUser("bob".into()))
        );
        // Mutual: the initiator challenges us back.
        let ich = encode_binary(&[3u8; 16]);
        let p = pairs(&[
            ("CHAP_N", "alice"),
            ("CHAP_R", &good),
            ("CHAP_I", "4"),
            ("CHAP_C", &ich),
        ]);
        let (_, out) = c
            .verify(&p, lookup, Some(("target", b"target-secret")))
            .unwrap();
        let expect = encode_binary(&chap_response(
            ChapAlgorithm::Md5,
            4,
            b"target-secret",
            &[3u8; 16],
        ));
        assert_eq!(out, pairs(&[("CHAP_N", "target"), ("CHAP_R", &expect)]));
        assert_eq!(
            c.verify(&p, lookup, None),
            Err(ChapError::NoOutgoingAccount)
        );
        // Our own challenge reflected back is refused.
        let refl = encode_binary(&[9u8; 16]);
        let p = pairs(&[
            ("CHAP_N", "alice"),
            ("CHAP_R", &good),
            ("CHAP_I", "4"),
            ("CHAP_C", &refl),
        ]);
        assert_eq!(
            c.verify(&p, lookup, Some(("t", b"x"))),
            Err(ChapError::ReflectedChallenge)
        );
        let short = encode_binary(&[1u8; 4]);
        let p = pairs(&[
            ("CHAP_N", "alice"),
            ("CHAP_R", &good),
            ("CHAP_I", "4"),
            ("CHAP_C", &short),
        ]);
        assert_eq!(
            c.verify(&p, lookup, Some(("t", b"x"))),
            Err(ChapError::ChallengeLength(4))
        );
    }
}
