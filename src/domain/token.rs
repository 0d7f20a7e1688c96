//! Verification link tokens.
//!
//! A token is `base64url(key_id || HMAC-SHA256(secret, key_id || email_key))`.
//! The database keeps only the key id, so a copy of it cannot forge or
//! reconstruct a link; the MAC binds the link to the address it was sent to,
//! so a key stops confirming a contact whose email has changed. Every email of
//! one key carries the same link, and it lasts exactly as long as the key.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::EmailKey;
use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

const KEY_ID_LEN: usize = 16;
const MAC_LEN: usize = 32;
/// Domain separation, so the secret's MACs mean nothing to any other use.
const CONTEXT: &[u8] = b"contact-verifier/link/v1\0";

/// The identifier of one issued verification key: 128 bits from the OS RNG.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// A new id. Its link token never starts with `-` (base64url's 62 in
    /// the first six bits), which command lines take for an option.
    pub fn generate() -> Self {
        let mut b = [0u8; KEY_ID_LEN];
        loop {
            rand::rngs::OsRng.fill_bytes(&mut b);
            if b[0] >> 2 != 62 {
                return KeyId(b);
            }
        }
    }

    /// The text stored in the database (lowercase hex).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Result<Self> {
        if s.len() != KEY_ID_LEN * 2 {
            return Err(Error::internal("stored key id has the wrong length"));
        }
        let mut b = [0u8; KEY_ID_LEN];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(|_| Error::internal("bad key id"))?;
            b[i] = u8::from_str_radix(hex, 16).map_err(|_| Error::internal("bad key id"))?;
        }
        Ok(KeyId(b))
    }
}

/// Read back from the store, which writes [`KeyId::to_hex`].
impl TryFrom<String> for KeyId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        KeyId::from_hex(&s)
    }
}

/// Reads a link secret file, or creates it (48 bytes from the OS RNG,
/// base64, mode 0600) when it does not exist; returns the secret and
/// whether it was created now. Two processes racing both end up with the
/// file's one secret.
pub fn load_or_create_secret(path: &std::path::Path) -> Result<(String, bool)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let read = |path: &std::path::Path| -> Result<String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "verification.secret: cannot read the generated secret {}: {e}",
                path.display()
            ))
        })?;
        Ok(text.trim().to_string())
    };
    if path.exists() {
        return Ok((read(path)?, false));
    }
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::STANDARD.encode(bytes);
    let cannot = |what: &str, e: std::io::Error| {
        Error::config(format!(
            "verification.secret: none is configured, and the SQLite default's secret file \
             {} cannot be {what}: {e}; set verification.secret_file",
            path.display()
        ))
    };
    // Written whole under a private name, then linked into place: a racing
    // process sees either no file or the complete one.
    let tmp = path.with_extension(format!("secret.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| cannot("created", e))?;
    let written = f
        .write_all(format!("{secret}\n").as_bytes())
        .and_then(|_| f.sync_all());
    drop(f);
    let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((secret, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((read(path)?, false)),
        Err(e) => Err(cannot("written", e)),
    }
}

/// The server-side secret the MAC is keyed with (at least 32 bytes).
#[derive(Clone)]
pub struct TokenSecret(Vec<u8>);

impl TokenSecret {
    pub const MIN_LEN: usize = 32;

    pub fn new(bytes: Vec<u8>) -> Result<Self> {
        if bytes.len() < Self::MIN_LEN {
            return Err(Error::config(format!(
                "verification.secret must be at least {} bytes",
                Self::MIN_LEN
            )));
        }
        Ok(TokenSecret(bytes))
    }

    fn mac(&self, key: &KeyId, email_key: &EmailKey) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.0).expect("HMAC accepts a key of any length");
        mac.update(CONTEXT);
        mac.update(&key.0);
        mac.update(email_key.as_str().as_bytes());
        mac
    }

    /// The link token for `key` sent to the address `email_key`.
    pub fn token_for(&self, key: &KeyId, email_key: &EmailKey) -> VerificationToken {
        let tag = self.mac(key, email_key).finalize().into_bytes();
        let mut raw = Vec::with_capacity(KEY_ID_LEN + MAC_LEN);
        raw.extend_from_slice(&key.0);
        raw.extend_from_slice(&tag);
        VerificationToken {
            key: key.clone(),
            tag: tag.into(),
            text: URL_SAFE_NO_PAD.encode(raw),
        }
    }

    /// Constant-time check that `token` was issued by this secret for `key`
    /// and the address `email_key`.
    pub fn verify(&self, token: &VerificationToken, email_key: &EmailKey) -> bool {
        self.mac(&token.key, email_key)
            .verify_slice(&token.tag)
            .is_ok()
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(***)")
    }
}

/// A token as it arrives from a link: well-formed, not yet verified.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationToken {
    key: KeyId,
    tag: [u8; MAC_LEN],
    text: String,
}

impl VerificationToken {
    /// A token, or the whole link as copied from the email (the last path
    /// segment, without query or fragment, quotes or angle brackets).
    pub fn parse(input: &str) -> Result<Self> {
        let s = input
            .trim()
            .trim_matches(|c: char| matches!(c, '<' | '>' | '"' | '\''));
        let s = s.split(['?', '#']).next().unwrap_or(s);
        let s = s.trim_end_matches('/').rsplit('/').next().unwrap_or(s);
        let invalid = || Error::invalid("the verification link is incomplete or malformed");
        if s.len() != 64 {
            return Err(invalid());
        }
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
        if raw.len() != KEY_ID_LEN + MAC_LEN {
            return Err(invalid());
        }
        let mut key = [0u8; KEY_ID_LEN];
        key.copy_from_slice(&raw[..KEY_ID_LEN]);
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&raw[KEY_ID_LEN..]);
        Ok(VerificationToken {
            key: KeyId(key),
            tag,
            text: s.to_string(),
        })
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key
    }

    /// The text that goes into the link. Only mail bodies use it: it never
    /// goes to logs or the database.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for VerificationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr_key(addr: &str) -> EmailKey {
        crate::domain::ContactEmail::parse(addr).unwrap().key()
    }

    fn secret() -> TokenSecret {
        TokenSecret::new(vec![7u8; 32]).unwrap()
    }

    #[test]
    fn issued_token_verifies_for_its_address() {
        let key = KeyId::generate();
        let t = secret().token_for(&key, &addr_key("a@example.com"));
        let parsed = VerificationToken::parse(t.expose()).unwrap();
        assert_eq!(parsed.key_id(), &key);
        assert!(secret().verify(&parsed, &addr_key("a@example.com")));
    }

    #[test]
    fn token_does_not_verify_for_another_address() {
        let t = secret().token_for(&KeyId::generate(), &addr_key("a@example.com"));
        assert!(!secret().verify(&t, &addr_key("b@example.com")));
    }

    #[test]
    fn token_does_not_verify_under_another_secret() {
        let t = secret().token_for(&KeyId::generate(), &addr_key("a@example.com"));
        let other = TokenSecret::new(vec![8u8; 32]).unwrap();
        assert!(!other.verify(&t, &addr_key("a@example.com")));
    }

    #[test]
    fn tampered_token_does_not_verify() {
        let t = secret().token_for(&KeyId::generate(), &addr_key("a@example.com"));
        let mut chars: Vec<char> = t.expose().chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        let parsed = VerificationToken::parse(&tampered).unwrap();
        assert!(!secret().verify(&parsed, &addr_key("a@example.com")));
    }

    #[test]
    fn the_whole_link_as_copied_reads_as_its_token() {
        let t = secret().token_for(&KeyId::generate(), &addr_key("a@example.com"));
        for copied in [
            format!("https://registrar.example/verify/{}", t.expose()),
            format!("<https://registrar.example/verify/{}/>", t.expose()),
            format!(" http://127.0.0.1:8080/verify/{}?utm=x#top\n", t.expose()),
        ] {
            assert_eq!(VerificationToken::parse(&copied).unwrap(), t, "{copied}");
        }
    }

    #[test]
    fn new_tokens_never_start_with_a_hyphen() {
        let s = secret();
        for _ in 0..2000 {
            let t = s.token_for(&KeyId::generate(), &addr_key("a@example.com"));
            assert!(!t.expose().starts_with('-'));
        }
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        assert!(VerificationToken::parse("").is_err());
        assert!(VerificationToken::parse("short").is_err());
        assert!(VerificationToken::parse(&"!".repeat(64)).is_err());
    }

    #[test]
    fn short_secret_is_a_configuration_error() {
        let e = TokenSecret::new(vec![1; 31]).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::Configuration);
    }

    #[test]
    fn key_ids_are_random_and_round_trip_through_hex() {
        let a = KeyId::generate();
        assert_ne!(a, KeyId::generate());
        assert_eq!(KeyId::from_hex(&a.to_hex()).unwrap(), a);
    }

    #[test]
    fn token_debug_output_hides_the_token() {
        let t = secret().token_for(&KeyId::generate(), &addr_key("a@example.com"));
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
