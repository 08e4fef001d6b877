//! Conversation references (`GET /v1/convai/conversations/resolve`): the Slack message or
//! Zendesk ticket a conversation is about, as a canonical key. A conversation is started with
//! one by the client that bridges the thread or ticket to the agent, through the dynamic
//! variable [`VARIABLE`]; resolving a link finds it again, however the link was copied (a
//! message of a thread and the thread's first message, a ticket with or without its
//! trailing path, query or fragment, name the same conversation).

/// The dynamic variable a conversation's reference is given in.
pub const VARIABLE: &str = "conversation_reference";

/// Why a reference is not one.
pub const NOT_A_REFERENCE: &str = "Expected a Slack message URL (https://TEAM.slack.com/archives/CHANNEL/pTIMESTAMP) or a \
     Zendesk ticket URL (https://SUBDOMAIN.zendesk.com/agent/tickets/ID)";

/// The canonical key of a Slack message URL (`slack:TEAM:CHANNEL:THREAD_TS`, the thread's
/// timestamp when the link names one, else the message's) or a Zendesk ticket URL
/// (`zendesk:SUBDOMAIN:ID`).
pub fn canonical(reference: &str) -> Result<String, &'static str> {
    let rest = reference
        .trim()
        .strip_prefix("https://")
        .or_else(|| reference.trim().strip_prefix("http://"))
        .ok_or(NOT_A_REFERENCE)?;
    let (address, query) = match rest.split_once('?') {
        Some((address, query)) => (address, query.split('#').next().unwrap_or_default()),
        None => (rest.split('#').next().unwrap_or_default(), ""),
    };
    let (host, path) = address.split_once('/').ok_or(NOT_A_REFERENCE)?;
    let host = host.to_ascii_lowercase();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(team) = host.strip_suffix(".slack.com") {
        let ["archives", channel, message, ..] = segments[..] else { return Err(NOT_A_REFERENCE) };
        let digits = message
            .strip_prefix('p')
            .filter(|d| d.len() > 6 && d.bytes().all(|b| b.is_ascii_digit()));
        let digits = digits.ok_or(NOT_A_REFERENCE)?;
        let ts = format!("{}.{}", &digits[..digits.len() - 6], &digits[digits.len() - 6..]);
        let thread = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("thread_ts="))
            .filter(|t| valid_ts(t))
            .map_or(ts, str::to_owned);
        return Ok(format!("slack:{}:{}:{thread}", label(team)?, channel.to_ascii_uppercase()));
    }
    if let Some(subdomain) = host.strip_suffix(".zendesk.com") {
        let id = match segments[..] {
            ["agent", "tickets", id, ..] | ["tickets", id, ..] => id,
            _ => return Err(NOT_A_REFERENCE),
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NOT_A_REFERENCE);
        }
        return Ok(format!("zendesk:{}:{id}", label(subdomain)?));
    }
    Err(NOT_A_REFERENCE)
}

/// A host label (a Slack team, a Zendesk subdomain).
fn label(name: &str) -> Result<&str, &'static str> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok { Ok(name) } else { Err(NOT_A_REFERENCE) }
}

/// `1700000000.123456`.
fn valid_ts(ts: &str) -> bool {
    ts.split_once('.').is_some_and(|(secs, micros)| {
        !secs.is_empty()
            && micros.len() == 6
            && secs.bytes().chain(micros.bytes()).all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_and_zendesk_links_have_one_key_each() {
        let thread = "slack:acme:C0123ABCD:1700000000.123456";
        for link in [
            "https://acme.slack.com/archives/C0123ABCD/p1700000000123456",
            "https://ACME.slack.com/archives/c0123abcd/p1700000000123456/",
            "https://acme.slack.com/archives/C0123ABCD/p1700000099000001?thread_ts=1700000000.123456&cid=C0123ABCD",
        ] {
            assert_eq!(canonical(link), Ok(thread.to_owned()), "{link}");
        }
        for link in [
            "https://acme.zendesk.com/agent/tickets/12345",
            "https://acme.zendesk.com/agent/tickets/12345/events#top",
            "https://acme.zendesk.com/tickets/12345?x=1",
        ] {
            assert_eq!(canonical(link), Ok("zendesk:acme:12345".to_owned()), "{link}");
        }
        for bad in [
            "",
            "acme.slack.com/archives/C1/p1700000000123456",
            "https://acme.slack.com/archives/C1/1700000000123456",
            "https://acme.slack.com/archives/C1",
            "https://acme.zendesk.com/agent/tickets/abc",
            "https://acme.zendesk.com/agent/users/1",
            "https://example.com/agent/tickets/1",
            "https://a_b.zendesk.com/agent/tickets/1",
        ] {
            assert_eq!(canonical(bad), Err(NOT_A_REFERENCE), "{bad}");
        }
    }
}
