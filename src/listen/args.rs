//! The "Listeners" flags.

use clap::Args;

use super::spec::ListenerSpec;

/// Where no `-b` is given (and systemd passed no socket).
pub(crate) const DEFAULT_BIND: &str = "127.0.0.1:8888";
/// What no `--bind` means, in words (for `--print-config`).
pub(crate) const DEFAULT_BIND_MEANING: &str = "127.0.0.1:8888, or every socket systemd passed";
/// Pending connections the kernel may queue per listener before `accept`; bursts of new
/// connections (the `Connection: close` benchmark, a reconnect storm) overflow the kernel's
/// usual 128. The kernel caps it at net.core.somaxconn.
pub(crate) const DEFAULT_BACKLOG: u32 = 1024;

#[derive(Args, Debug, Clone)]
pub(crate) struct ListenArgs {
    /// Where to listen (repeatable): HOST:PORT (a host name means every address it resolves
    /// to), [IPV6]:PORT (v6-only), :PORT or PORT (every interface: 0.0.0.0 and [::]),
    /// unix:PATH, fd://N (an inherited listening socket) or fd://NAME (a socket systemd passed).
    /// Options after a comma: tls, proxy. Port 0 picks a free port. Default 127.0.0.1:8888, or
    /// every socket systemd passed; with -b, a passed socket is served only where -b fd://NAME
    /// names it. The variable takes several, separated by spaces. E.g. -b 0.0.0.0:8000 -b
    /// unix:/run/app.sock,proxy
    #[arg(
        short,
        long = "bind",
        value_name = "ADDR[,OPTION...]",
        help_heading = "Listeners",
        env = "WEBSERVER_BIND",
        value_delimiter = ' '
    )]
    pub(crate) bind: Vec<ListenerSpec>,

    /// Connections the kernel queues per listener before a worker accepts them (capped by
    /// net.core.somaxconn).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_BACKLOG,
        value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64),
        help_heading = "Listeners",
        env = "WEBSERVER_BACKLOG"
    )]
    pub(crate) backlog: u32,

    /// Set SO_REUSEPORT on the TCP listeners this server binds, so other processes (another
    /// webserver, say during a blue/green switch) may listen on the same port, the kernel
    /// spreading new connections over them.
    #[arg(long, help_heading = "Listeners", env = "WEBSERVER_REUSE_PORT")]
    pub(crate) reuse_port: bool,

    /// Permissions of the unix sockets this server creates, in octal; connecting needs write
    /// permission, so 660 lets the owner and the group connect (e.g. nginx in the group), 666
    /// everyone. Default: what the umask leaves (with umask 022 only the owner may connect).
    #[arg(
        long,
        value_name = "MODE",
        value_parser = socket_mode,
        help_heading = "Listeners",
        env = "WEBSERVER_SOCKET_MODE"
    )]
    pub(crate) socket_mode: Option<u32>,

    /// The umask of the master and its workers, in octal (gunicorn's --umask): the mode of
    /// every file they create, unix sockets included, e.g. 007 lets the group connect too.
    /// Default: inherited.
    #[arg(
        long,
        value_name = "MODE",
        value_parser = socket_mode,
        help_heading = "Listeners",
        env = "WEBSERVER_UMASK"
    )]
    pub(crate) umask: Option<u32>,
}

/// An octal permission mode (or mask), at most 0o777.
fn socket_mode(s: &str) -> Result<u32, String> {
    const MAX_MODE: u32 = 0o777;
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= MAX_MODE => Ok(mode),
        _ => Err(format!("'{s}' is not an octal permission mode such as 660")),
    }
}
