//! Reading delivery status notifications (RFC 3464 bounce reports): which
//! recipients a report names, and whether each failed for good.
//!
//! mail-parser walks the MIME structure (multipart/report, nested
//! message/rfc822 parts, base64 or quoted-printable bodies); only the body of
//! each `message/delivery-status` part is read here, leniently, because real
//! reports are untidy. Nothing is inferred from prose: a recipient counts as
//! a permanent failure only through its `Action` and `Status` fields.

use std::collections::VecDeque;

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::{Error, Result};

/// One per-recipient block of a delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The rfc822 addresses the block names: Final-Recipient first, then
    /// Original-Recipient when different; without angle brackets, trimmed, as
    /// written (case kept). Types other than rfc822 (e.g. `x400;`) are not
    /// included. Empty if none.
    pub addresses: Vec<String>,
    /// `Action: failed` with a 5.x.x `Status`: a permanent failure. Everything
    /// else (delayed, delivered, relayed, expanded, 4.x.x, missing Action or
    /// Status) is false.
    pub permanent: bool,
    /// The `Status` value as written, e.g. "5.1.1" (only the code, any
    /// trailing comment stripped).
    pub status: Option<String>,
    /// The `Diagnostic-Code` text after its type (`smtp; 550 5.1.1 ...` ->
    /// `550 5.1.1 ...`), folded lines unfolded, whitespace collapsed.
    pub diagnostic: Option<String>,
}

/// What a message holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Whether any message/delivery-status part was found.
    pub has_status_part: bool,
    pub recipients: Vec<RecipientReport>,
}

const EXPECTED: &str =
    "pipe the whole delivery status notification (RFC 3464) message, headers included";

/// Parses one message. Input that is not a mail message at all (empty, only
/// whitespace, binary garbage, no header section) is an `InvalidInput` error;
/// a real message without a delivery-status part (an auto-reply, spam) is Ok
/// with `has_status_part` false.
pub fn parse(raw: &[u8]) -> Result<Report> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid(format!(
            "the bounce report is empty; {EXPECTED}"
        )));
    }
    let message = MessageParser::new()
        .parse(raw)
        .filter(|m| has_header_field(m, raw))
        .ok_or_else(|| not_a_message(raw))?;

    let mut report = Report::default();
    // Breadth first over the message and every message nested in it, with a
    // queue rather than recursion: the nesting depth is the sender's choice.
    // Each nested message is taken out of its part, so that no message is
    // dropped with others inside it: that drop recurses once per level, and
    // a few megabytes of nesting would overflow the stack.
    let mut messages = VecDeque::from([message]);
    while let Some(mut m) = messages.pop_front() {
        for part in &mut m.parts {
            if is_status_part(part) {
                report.has_status_part = true;
                let body = String::from_utf8_lossy(part.contents());
                report.recipients.extend(recipient_reports(&body));
            }
            if let PartType::Message(inner) = &mut part.body {
                messages.push_back(std::mem::take(inner));
            }
        }
    }
    Ok(report)
}

/// Whether mail-parser found at least one real `Name: value` line in the
/// top-level header section. It is forgiving enough to take a line of
/// garbage for a field name, so the name's characters (RFC 5322 ftext) and
/// its colon are checked here.
fn has_header_field(message: &Message, raw: &[u8]) -> bool {
    message.root_part().headers.iter().any(|h| {
        let name = h.name.as_str();
        let colon = (h.offset_start as usize)
            .checked_sub(1)
            .and_then(|i| raw.get(i))
            == Some(&b':');
        colon && !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
    })
}

fn not_a_message(raw: &[u8]) -> Error {
    let binary = raw.contains(&0) || std::str::from_utf8(raw).is_err();
    let what = if binary {
        "it is binary data with no header section"
    } else {
        "it does not start with a header section (lines such as \"From: ...\")"
    };
    Error::invalid(format!(
        "the bounce report is not a mail message: {what}; {EXPECTED}"
    ))
}

/// `message/delivery-status`, or its RFC 6533 twin for internationalized
/// mail, which has the same fields.
fn is_status_part(part: &MessagePart) -> bool {
    part.is_content_type("message", "delivery-status")
        || part.is_content_type("message", "global-delivery-status")
}

/// One `Name: value` field of a status body; the name in lower case.
struct Field {
    name: String,
    value: String,
}

/// The per-recipient fields of RFC 3464 section 2.3: they appear once per
/// block, so a repeated one begins the next recipient's block.
const RECIPIENT_FIELDS: [&str; 9] = [
    "original-recipient",
    "final-recipient",
    "action",
    "status",
    "remote-mta",
    "diagnostic-code",
    "last-attempt-date",
    "final-log-id",
    "will-retry-until",
];

fn names_recipient(name: &str) -> bool {
    name == "final-recipient" || name == "original-recipient"
}

/// Whether `name` begins a new block rather than continuing `block`. Besides
/// a repeated field, an address field after the block's address and a later
/// field other than Action does (a report with no blank line between
/// recipients). Action is let through because Exim writes Original-Recipient,
/// Action, Final-Recipient in that order within one block.
fn starts_new_block(block: &[Field], name: &str) -> bool {
    if !RECIPIENT_FIELDS.contains(&name) {
        return false;
    }
    if block.iter().any(|f| f.name == name) {
        return true;
    }
    if !names_recipient(name) {
        return false;
    }
    match block.iter().rposition(|f| names_recipient(&f.name)) {
        Some(last) => block[last + 1..].iter().any(|f| f.name != "action"),
        None => false,
    }
}

/// Splits a status body into field blocks: at blank lines, and where
/// [`starts_new_block`] says so. Lines are unfolded; lines that are not
/// fields are skipped.
fn field_blocks(body: &str) -> Vec<Vec<Field>> {
    let mut blocks: Vec<Vec<Field>> = vec![Vec::new()];
    for line in body.lines() {
        let current = blocks.last_mut().expect("blocks is never empty");
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(Vec::new());
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // A folded field goes on; after a blank line there is nothing to
            // continue.
            if let Some(last) = current.last_mut() {
                last.value.push(' ');
                last.value.push_str(line.trim());
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if starts_new_block(current, &name) {
            blocks.push(Vec::new());
        }
        let field = Field {
            name,
            value: value.trim().to_string(),
        };
        blocks
            .last_mut()
            .expect("blocks is never empty")
            .push(field);
    }
    blocks
}

/// The recipient blocks of one status body. Blocks holding none of
/// Final-Recipient, Original-Recipient, Action and Status (the per-message
/// fields: Reporting-MTA, Arrival-Date...) are not recipients.
fn recipient_reports(body: &str) -> Vec<RecipientReport> {
    field_blocks(body)
        .iter()
        .filter(|block| {
            block.iter().any(|f| {
                matches!(
                    f.name.as_str(),
                    "final-recipient" | "original-recipient" | "action" | "status"
                )
            })
        })
        .map(|block| recipient_report(block))
        .collect()
}

fn recipient_report(block: &[Field]) -> RecipientReport {
    let first = |name: &str| {
        block
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    };
    let mut addresses: Vec<String> = Vec::new();
    for name in ["final-recipient", "original-recipient"] {
        if let Some(address) = first(name).and_then(rfc822_address) {
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
    }
    let status = first("status").and_then(first_token).map(str::to_string);
    let failed = first("action")
        .and_then(first_token)
        .is_some_and(|a| a.eq_ignore_ascii_case("failed"));
    let permanent = failed && status.as_deref().is_some_and(|s| s.starts_with("5."));
    RecipientReport {
        addresses,
        permanent,
        status,
        diagnostic: first("diagnostic-code").and_then(diagnostic_text),
    }
}

/// The value up to its first space or comment: `5.1.1 (user unknown)` ->
/// `5.1.1`.
fn first_token(value: &str) -> Option<&str> {
    value
        .split(|c: char| c.is_whitespace() || c == '(')
        .find(|t| !t.is_empty())
}

/// The address of an `rfc822; user@example.com` value, brackets and any
/// trailing comment removed. Other address types are not mail addresses. A
/// value with no type at all is taken when it looks like an address, as some
/// MTAs leave the type out.
fn rfc822_address(value: &str) -> Option<String> {
    let address = match value.split_once(';') {
        Some((kind, address)) if kind.trim().eq_ignore_ascii_case("rfc822") => address,
        Some(_) => return None,
        None if value.contains('@') => value,
        None => return None,
    };
    let address = address.trim();
    let address = match address.strip_prefix('<') {
        Some(rest) => rest.split('>').next().unwrap_or(rest),
        None => address.split(" (").next().unwrap_or(address),
    }
    .trim();
    (!address.is_empty()).then(|| address.to_string())
}

/// The text of a `Diagnostic-Code` after its type (`smtp;`, `X-Postfix;`),
/// whitespace collapsed. Text with no type is kept whole: what comes before a
/// `;` is only a type when it is one word.
fn diagnostic_text(value: &str) -> Option<String> {
    let text = match value.split_once(';') {
        Some((kind, text)) if !kind.trim().is_empty() && !kind.trim().contains(' ') => text,
        _ => value,
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    //! Each fixture's registrant (the address our verification mail went to):
    //!
    //! | fixture | registrant |
    //! | --- | --- |
    //! | postfix-550.eml | alice.registrant@example.com |
    //! | exim-550.eml | bob.holder@example.org |
    //! | gmail-550.eml | carol.owner@example.net |
    //! | forwarded.eml | Dave.Contact@example.com (forwarded to dave.personal@example.org) |
    //! | postfix-delayed.eml | erin.admin@example.org |
    //! | temporary-4xx.eml | frank.billing@example.net |
    //! | multi-recipient.eml | grace.tech@example.com and heidi.ops@example.net |
    //! | lf-only.eml | ivan.hostmaster@lapsed.example.org |
    //! | nested.eml | judy.registrant@example.com |
    //! | base64-status.eml | ken.domains@example.org |
    //! | autoreply.eml | laura.registrant@example.net (no report) |
    //! | prose-only.eml | mallory.contact@example.org (no report) |

    use super::*;
    use crate::ErrorCode;
    use proptest::prelude::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/dsn/", $name)).as_slice()
        };
    }

    fn recipient(
        addresses: &[&str],
        permanent: bool,
        status: &str,
        diagnostic: &str,
    ) -> RecipientReport {
        RecipientReport {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            permanent,
            status: Some(status.to_string()),
            diagnostic: Some(diagnostic.to_string()),
        }
    }

    fn only_recipient(raw: &[u8]) -> RecipientReport {
        let report = parse(raw).unwrap();
        assert!(report.has_status_part);
        assert_eq!(report.recipients.len(), 1, "{report:?}");
        report.recipients.into_iter().next().unwrap()
    }

    #[test]
    fn a_postfix_user_unknown_bounce_is_permanent() {
        assert_eq!(
            only_recipient(fixture!("postfix-550.eml")),
            recipient(
                &["alice.registrant@example.com"],
                true,
                "5.1.1",
                "550 5.1.1 <alice.registrant@example.com>: Recipient address rejected: \
                 User unknown in virtual mailbox table",
            )
        );
    }

    #[test]
    fn an_exim_bounce_with_action_before_final_recipient_is_one_permanent_block() {
        assert_eq!(
            only_recipient(fixture!("exim-550.eml")),
            recipient(
                &["bob.holder@example.org"],
                true,
                "5.0.0",
                "550 5.1.1 <bob.holder@example.org>: Recipient address rejected: User unknown",
            )
        );
    }

    #[test]
    fn a_gmail_bounce_with_html_and_a_folded_diagnostic_is_unfolded() {
        assert_eq!(
            only_recipient(fixture!("gmail-550.eml")),
            recipient(
                &["carol.owner@example.net"],
                true,
                "5.1.1",
                "550 5.1.1 <carol.owner@example.net>: Recipient address rejected: \
                 User unknown in local recipient table",
            )
        );
    }

    #[test]
    fn a_forwarded_address_names_the_target_then_the_original_as_written() {
        assert_eq!(
            only_recipient(fixture!("forwarded.eml")),
            recipient(
                &["dave.personal@example.org", "Dave.Contact@example.com"],
                true,
                "5.2.1",
                "550 5.2.1 The email account that you tried to reach is disabled.",
            )
        );
    }

    #[test]
    fn a_delayed_report_is_not_permanent() {
        assert_eq!(
            only_recipient(fixture!("postfix-delayed.eml")),
            recipient(
                &["erin.admin@example.org"],
                false,
                "4.4.1",
                "connect to mx.example.org[203.0.113.40]:25: Connection timed out",
            )
        );
    }

    #[test]
    fn a_failed_action_with_a_4xx_status_is_not_permanent() {
        assert_eq!(
            only_recipient(fixture!("temporary-4xx.eml")),
            recipient(
                &["frank.billing@example.net"],
                false,
                "4.2.2",
                "452 4.2.2 <frank.billing@example.net>... Mailbox full",
            )
        );
    }

    #[test]
    fn recipient_blocks_without_a_blank_line_between_them_are_split() {
        let report = parse(fixture!("multi-recipient.eml")).unwrap();
        assert!(report.has_status_part);
        assert_eq!(
            report.recipients,
            vec![
                recipient(
                    &["grace.tech@example.com"],
                    true,
                    "5.1.1",
                    "550 5.1.1 No such user"
                ),
                recipient(
                    &["heidi.ops@example.net"],
                    false,
                    "4.4.7",
                    "421 4.4.7 Try again later"
                ),
            ]
        );
    }

    #[test]
    fn a_report_with_lf_line_endings_reads_like_one_with_crlf() {
        let expected = recipient(
            &["ivan.hostmaster@lapsed.example.org"],
            true,
            "5.4.4",
            "Host or domain name not found. Name service error for \
             name=lapsed.example.org type=AAAA: Host not found",
        );
        let lf = fixture!("lf-only.eml");
        assert!(!lf.contains(&b'\r'));
        assert_eq!(only_recipient(lf), expected);
        let crlf = String::from_utf8_lossy(lf).replace('\n', "\r\n");
        assert_eq!(only_recipient(crlf.as_bytes()), expected);
    }

    #[test]
    fn a_report_inside_a_forwarded_message_is_found() {
        assert_eq!(
            only_recipient(fixture!("nested.eml")),
            recipient(
                &["judy.registrant@example.com"],
                true,
                "5.1.10",
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; \
                 Recipient not found by SMTP address lookup",
            )
        );
    }

    #[test]
    fn a_base64_status_part_is_read_decoded() {
        assert_eq!(
            only_recipient(fixture!("base64-status.eml")),
            recipient(
                &["ken.domains@example.org"],
                true,
                "5.7.1",
                "550 5.7.1 Recipient rejected by policy",
            )
        );
    }

    #[test]
    fn a_quoted_printable_status_part_is_read_decoded() {
        let raw = b"From: postmaster@example.com\r\n\
            To: bounces@registrar.example\r\n\
            Subject: Undeliverable\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: multipart/report; report-type=delivery-status; boundary=\"qp\"\r\n\
            \r\n\
            --qp\r\n\
            Content-Type: message/delivery-status\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\
            \r\n\
            Reporting-MTA: dns; mail.example.com\r\n\
            \r\n\
            Final-Recipient: rfc822; qp.user@example.com\r\n\
            Action: failed\r\n\
            Status: 5.1.1\r\n\
            Diagnostic-Code: smtp; 550 5.1.1 Mailbox unavailable, see https://example.com/=\r\n\
            help?code=3D550\r\n\
            \r\n\
            --qp--\r\n";
        assert_eq!(
            only_recipient(raw),
            recipient(
                &["qp.user@example.com"],
                true,
                "5.1.1",
                "550 5.1.1 Mailbox unavailable, see https://example.com/help?code=550",
            )
        );
    }

    #[test]
    fn an_auto_reply_has_no_status_part() {
        assert_eq!(parse(fixture!("autoreply.eml")).unwrap(), Report::default());
    }

    #[test]
    fn prose_saying_user_unknown_is_no_bounce() {
        assert_eq!(
            parse(fixture!("prose-only.eml")).unwrap(),
            Report::default()
        );
    }

    #[test]
    fn status_fields_in_a_text_part_are_not_read() {
        let raw = b"From: postmaster@example.com\n\
            Subject: Returned mail\n\
            Content-Type: text/plain\n\
            \n\
            Final-Recipient: rfc822; someone@example.com\n\
            Action: failed\n\
            Status: 5.1.1\n";
        assert_eq!(parse(raw).unwrap(), Report::default());
    }

    #[test]
    fn a_message_with_headers_only_is_not_a_report() {
        assert_eq!(
            parse(b"From: someone@example.com\r\nSubject: hi\r\n").unwrap(),
            Report::default()
        );
    }

    #[test]
    fn empty_input_is_an_error_naming_the_problem() {
        for raw in [&b""[..], b"   \r\n\t\n"] {
            let e = parse(raw).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput);
            assert!(e.message.contains("empty"), "{}", e.message);
            assert!(e.message.contains("RFC 3464"), "{}", e.message);
        }
    }

    #[test]
    fn binary_garbage_is_an_error() {
        for raw in [
            &b"\0\0\0\x01\x02\x03"[..],
            b"\xff\xfe\x00\x9c\x80garbage\n\xc3",
        ] {
            let e = parse(raw).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput);
            assert!(e.message.contains("binary"), "{}", e.message);
            assert!(e.message.contains("headers included"), "{}", e.message);
        }
    }

    #[test]
    fn text_without_a_header_section_is_an_error() {
        for raw in [
            &b"hello"[..],
            b"550 user unknown, delivery failed\n\nsomeone@example.com\n",
        ] {
            let e = parse(raw).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput);
            assert!(e.message.contains("not a mail message"), "{}", e.message);
        }
    }

    #[test]
    fn a_bare_status_message_is_read() {
        // Some gateways send the delivery-status part as the whole message.
        let raw = b"From: postmaster@example.com\n\
            Content-Type: message/delivery-status\n\
            \n\
            Reporting-MTA: dns; mail.example.com\n\
            \n\
            Final-Recipient: rfc822;<bare@example.com>\n\
            Action: failed\n\
            Status: 5.1.1 (unknown user)\n";
        let r = only_recipient(raw);
        assert_eq!(r.addresses, ["bare@example.com"]);
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert!(r.permanent);
        assert_eq!(r.diagnostic, None);
    }

    fn status_body(body: &str) -> Vec<RecipientReport> {
        let raw = format!(
            "From: postmaster@example.com\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\
             \n--b\nContent-Type: message/delivery-status\n\n{body}\n--b--\n"
        );
        let report = parse(raw.as_bytes()).unwrap();
        assert!(report.has_status_part);
        report.recipients
    }

    #[test]
    fn per_message_fields_are_not_a_recipient() {
        let r = status_body(
            "Reporting-MTA: dns; mail.example.com\n\
             X-Postfix-Sender: rfc822; bounces@registrar.example\n\
             Received-From-MTA: dns; verify@registrar.example\n\
             Arrival-Date: Tue, 13 Feb 2024 10:15:01 +0000\n",
        );
        assert_eq!(r, []);
    }

    #[test]
    fn per_message_fields_run_into_the_first_recipient_still_give_one_recipient() {
        let r = status_body(
            "Reporting-MTA: dns; mail.example.com\n\
             Final-Recipient: rfc822; run.on@example.com\n\
             Action: failed\n\
             Status: 5.1.1\n",
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].addresses, ["run.on@example.com"]);
        assert!(r[0].permanent);
    }

    #[test]
    fn field_names_and_address_types_ignore_case() {
        let r = status_body(
            "FINAL-RECIPIENT: RFC822;Mixed.Case@Example.com\n\
             action: FAILED\n\
             sTaTuS: 5.1.1\n\
             diagnostic-code: SMTP;550 no\n",
        );
        assert_eq!(
            r,
            [recipient(
                &["Mixed.Case@Example.com"],
                true,
                "5.1.1",
                "550 no"
            )]
        );
    }

    #[test]
    fn non_rfc822_addresses_are_left_out() {
        let r = status_body(
            "Original-Recipient: x400; /C=ZZ/ADMD=/PRMD=example/O=ex/S=user/\n\
             Final-Recipient: rfc822; gateway.user@example.com\n\
             Action: failed\n\
             Status: 5.1.1\n\
             \n\
             Final-Recipient: x400; /C=ZZ/S=other/\n\
             Action: failed\n\
             Status: 5.1.1\n",
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].addresses, ["gateway.user@example.com"]);
        assert!(r[1].addresses.is_empty());
        assert!(r[1].permanent);
    }

    #[test]
    fn an_address_without_a_type_or_with_a_comment_is_read() {
        let r = status_body(
            "Final-Recipient: untyped@example.com\n\
             Original-Recipient: rfc822; commented@example.com (as given)\n\
             Action: failed\n\
             Status: 5.1.1\n\
             \n\
             Final-Recipient: no address here\n\
             Action: failed\n\
             Status: 5.1.1\n",
        );
        assert_eq!(
            r[0].addresses,
            ["untyped@example.com", "commented@example.com"]
        );
        assert!(r[1].addresses.is_empty());
    }

    #[test]
    fn a_global_delivery_status_part_is_read_too() {
        // RFC 6533: the report of a message sent with SMTPUTF8.
        let raw = "From: postmaster@example.com\n\
            Content-Type: multipart/report; report-type=global-delivery-status; boundary=g\n\
            \n--g\nContent-Type: message/global-delivery-status\n\n\
            Final-Recipient: rfc822; global@example.com\n\
            Action: failed\n\
            Status: 5.1.1\n\
            \n--g--\n";
        let r = only_recipient(raw.as_bytes());
        assert_eq!(r.addresses, ["global@example.com"]);
        assert!(r.permanent);
    }

    #[test]
    fn the_same_original_recipient_is_named_once() {
        let r = status_body(
            "Final-Recipient: rfc822; same@example.com\n\
             Original-Recipient: rfc822;<same@example.com>\n\
             Action: failed\n\
             Status: 5.1.1\n",
        );
        assert_eq!(r[0].addresses, ["same@example.com"]);
    }

    #[test]
    fn exim_order_with_an_original_recipient_stays_one_block() {
        // Exim writes Original-Recipient, Action, Final-Recipient, Status.
        let r = status_body(
            "Reporting-MTA: dns; mail.example.org\n\
             \n\
             Original-Recipient: rfc822;orig@example.org\n\
             Action: failed\n\
             Final-Recipient: rfc822;final@example.org\n\
             Status: 5.0.0\n\
             Original-Recipient: rfc822;second@example.org\n\
             Action: delayed\n\
             Final-Recipient: rfc822;second@example.org\n\
             Status: 4.0.0\n",
        );
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].addresses, ["final@example.org", "orig@example.org"]);
        assert!(r[0].permanent);
        assert_eq!(r[1].addresses, ["second@example.org"]);
        assert!(!r[1].permanent);
    }

    #[test]
    fn a_blank_line_ends_a_block_even_when_no_field_repeats() {
        let r = status_body(
            "Final-Recipient: rfc822; first@example.com\n\
             Action: failed\n\
             Status: 5.1.1\n\
             \n\
             Diagnostic-Code: smtp; 550 second is unknown\n\
             Final-Recipient: rfc822; second@example.com\n\
             Action: failed\n\
             Status: 5.1.1\n",
        );
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].diagnostic, None);
        assert_eq!(r[1].addresses, ["second@example.com"]);
        assert_eq!(r[1].diagnostic.as_deref(), Some("550 second is unknown"));
    }

    #[test]
    fn an_original_recipient_after_a_status_begins_the_next_block() {
        let r = status_body(
            "Final-Recipient: rfc822; first@example.com\n\
             Action: failed\n\
             Status: 5.1.1\n\
             Original-Recipient: rfc822; second.orig@example.com\n\
             Final-Recipient: rfc822; second@example.com\n\
             Action: delayed\n\
             Status: 4.4.1\n",
        );
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].addresses, ["first@example.com"]);
        assert!(r[0].permanent);
        assert_eq!(
            r[1].addresses,
            ["second@example.com", "second.orig@example.com"]
        );
        assert!(!r[1].permanent);
    }

    #[test]
    fn only_failed_with_a_5xx_status_is_permanent() {
        for (action, status, permanent) in [
            ("failed", "5.1.1", true),
            ("failed (bad mailbox)", "5.0.0", true),
            ("failed", "4.4.7", false),
            ("delayed", "5.1.1", false),
            ("delivered", "2.0.0", false),
            ("relayed", "2.0.0", false),
            ("expanded", "2.0.0", false),
        ] {
            let r = status_body(&format!(
                "Final-Recipient: rfc822; a@example.com\nAction: {action}\nStatus: {status}\n"
            ));
            assert_eq!(r[0].permanent, permanent, "{action} {status}");
        }
        let no_status = status_body("Final-Recipient: rfc822; a@example.com\nAction: failed\n");
        assert!(!no_status[0].permanent);
        assert_eq!(no_status[0].status, None);
        let no_action = status_body("Final-Recipient: rfc822; a@example.com\nStatus: 5.1.1\n");
        assert!(!no_action[0].permanent);
    }

    #[test]
    fn a_diagnostic_without_a_type_is_kept_whole() {
        let r = status_body(
            "Final-Recipient: rfc822; a@example.com\n\
             Action: failed\n\
             Status: 5.1.1\n\
             Diagnostic-Code: 550 user unknown; see postmaster\n",
        );
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("550 user unknown; see postmaster")
        );
    }

    #[test]
    fn a_deeply_nested_report_does_not_overflow_the_stack() {
        // 100,000 levels in 3 MB, well under a relay's usual size limit.
        let mut raw = String::from("From: postmaster@example.com\n");
        for _ in 0..100_000 {
            raw.push_str("Content-Type: message/rfc822\n\n");
        }
        raw.push_str(
            "Content-Type: message/delivery-status\n\n\
             Final-Recipient: rfc822; deep@example.com\n\
             Action: failed\n\
             Status: 5.1.1\n",
        );
        assert_eq!(
            only_recipient(raw.as_bytes()).addresses,
            ["deep@example.com"]
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&raw);
        }

        #[test]
        fn parse_never_panics_on_damaged_reports(
            cut in 0usize..4096,
            at in 0usize..4096,
            junk in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            // Truncated and spliced real reports reach deeper into the MIME
            // walk than random bytes do.
            for fixture in [fixture!("gmail-550.eml"), fixture!("nested.eml"), fixture!("base64-status.eml")] {
                let mut raw = fixture[..cut.min(fixture.len())].to_vec();
                let at = at.min(raw.len());
                raw.splice(at..at, junk.iter().copied());
                let _ = parse(&raw);
            }
        }
    }
}
