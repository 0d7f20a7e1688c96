//! Who is on the other end of a request, for the evidence of a confirmed
//! link (CONTRACT section 7): the peer address, or, when the peer is a
//! trusted proxy, the right-most `X-Forwarded-For` address that is not one.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::AppState;
use crate::service::ClientInfo;

/// The client of a request, as an extractor.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Client(ClientInfo {
            ip: peer
                .map(|p| client_ip(p, &parts.headers, &state.trusted_proxies))
                .map(|ip| ip.to_string()),
            user_agent,
        }))
    }
}

/// The peer, unless it is a trusted proxy: then the right-most forwarded
/// address that is not a trusted proxy (the left-most entries are whatever
/// the client chose to send, so they prove nothing).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let t = [ip("127.0.0.1")];
        assert_eq!(
            client_ip(ip("203.0.113.9"), &xff(&["198.51.100.1"]), &t),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let t = [ip("127.0.0.1"), ip("10.0.0.2")];
        let h = xff(&["6.6.6.6, 198.51.100.7", "10.0.0.2"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("198.51.100.7"));
    }

    #[test]
    fn a_trusted_peer_without_forwarding_is_itself_and_mapped_v4_is_canonical() {
        let t = [ip("127.0.0.1")];
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &HeaderMap::new(), &t),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &xff(&["garbage"]), &t),
            ip("127.0.0.1")
        );
    }
}
