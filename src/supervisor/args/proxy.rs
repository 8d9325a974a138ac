//! The "Proxies" flags: whom to believe about the client when the server runs behind a proxy
//! (`--forwarded-allow-ips`), whether connections start with a PROXY protocol header
//! (`--proxy-protocol`) and who may send one (`--proxy-allow-from`). Workers apply them, so they travel on each worker's command line.

use clap::Args;

use crate::http::peer_trust::TrustList;
use crate::server::Proxies;

/// Options for running behind a proxy (nginx, HAProxy, a cloud load balancer).
#[derive(Args, Debug, Clone)]
pub(crate) struct ProxyArgs {
    /// Peers whose Forwarded / X-Forwarded-For / X-Forwarded-Proto headers are believed: they set
    /// REMOTE_ADDR (the right-most hop that is not itself trusted) and webserver.url_scheme; from
    /// any other peer those headers are removed before the app sees them. Comma-separated
    /// addresses or CIDR blocks, `*` for every TCP peer, `unix` for unix-socket peers, or an empty
    /// value for nobody; e.g. 127.0.0.1,10.0.0.0/8.
    #[arg(
        long,
        value_name = "IPS",
        default_value = "127.0.0.1,::1",
        env = "WEBSERVER_FORWARDED_ALLOW_IPS",
        help_heading = "Proxies"
    )]
    pub(crate) forwarded_allow_ips: TrustList,

    /// Every connection must start with a PROXY protocol header (v1 text or v2 binary, as HAProxy
    /// or a cloud load balancer send): its source address becomes the peer. Connections without a
    /// valid one are closed. Only for listeners that nothing but the proxy can reach.
    // Falsey: WEBSERVER_PROXY_PROTOCOL=0/false/no/off is off, any other value on.
    #[arg(
        long,
        env = "WEBSERVER_PROXY_PROTOCOL",
        value_parser = clap::builder::FalseyValueParser::new(),
        help_heading = "Proxies"
    )]
    pub(crate) proxy_protocol: bool,

    /// Peers that may send a PROXY protocol header (gunicorn's --proxy-allow-from): on a
    /// `proxy` listener, a connection from any other peer is closed before it is read, so that
    /// a listener others can reach does not let them claim any address. Comma-separated
    /// addresses or CIDR blocks, `*` for every TCP peer, `unix` for unix-socket peers.
    #[arg(
        long,
        value_name = "IPS",
        default_value = "127.0.0.1,::1,unix",
        env = "WEBSERVER_PROXY_ALLOW_FROM",
        help_heading = "Proxies"
    )]
    pub(crate) proxy_allow_from: TrustList,
}

impl ProxyArgs {
    /// What the serving loop applies.
    pub(crate) fn proxies(&self) -> Proxies {
        Proxies {
            trusted: self.forwarded_allow_ips.clone(),
            proxy_senders: self.proxy_allow_from.clone(),
        }
    }

    /// The same options as command-line arguments, for a worker's command line
    /// (`--proxy-protocol` reaches workers as every listener's `proxy` option).
    pub(crate) fn to_args(&self) -> Vec<String> {
        vec![
            format!("--forwarded-allow-ips={}", self.forwarded_allow_ips),
            format!("--proxy-allow-from={}", self.proxy_allow_from),
        ]
    }
}
