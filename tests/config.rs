//! Where the serve options come from (issue 13 "Configuration"), through the real binary: flags,
//! `WEBSERVER_*` variables, a `--config` TOML file and defaults, in that order; `--print-config`
//! naming each value's source; one-line refusals (exit 2) of bad files and nonsense values; and
//! served requests proving the file's values are the ones applied.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// The usage exit status (`src/exit.rs`).
const USAGE: i32 = 2;

/// Writes `toml` to a fresh `ws.toml` and returns its path.
fn config_file(toml: &str) -> PathBuf {
    let path = fresh_dir("config").join("ws.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// `--config PATH` as arguments.
fn config_arg(path: &Path) -> [String; 2] {
    ["--config".to_owned(), path.display().to_string()]
}

/// `hello:app`, absolute.
fn hello() -> String {
    format!("{}:app", sample_app("hello").display())
}

/// Runs `webserver [args] --print-config` (no LIB:SYMBOL) and returns what it printed.
fn print_config(builder: ServerBuilder) -> String {
    let exited = builder.args(["--print-config"]).run_to_exit();
    assert!(exited.status.success(), "--print-config failed: {exited:?}");
    assert_eq!(exited.stderr, "", "--print-config wrote on stderr");
    exited.stdout
}

fn printed() -> ServerBuilder {
    server(hello()).no_target().no_default_bind()
}

/// The `(value, source)` of `key` in `--print-config` output: `key = value   # source`.
fn setting(out: &str, key: &str) -> (String, String) {
    let prefix = format!("{key} = ");
    let line = out
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{key}` in --print-config output:\n{out}"));
    let (value, source) = line[prefix.len()..]
        .split_once("  # ")
        .unwrap_or_else(|| panic!("no source on {line:?}"));
    (value.trim().to_owned(), source.trim().to_owned())
}

/// Runs to exit expecting a usage error; returns stderr.
fn refused(builder: ServerBuilder) -> String {
    let exited = builder.run_to_exit();
    assert_eq!(
        exited.status.code(),
        Some(USAGE),
        "expected the usage status: {exited:?}"
    );
    assert_eq!(exited.stdout, "", "a refusal printed on stdout");
    exited.stderr
}

/// Asserts `stderr` is exactly one `webserver: error: ` line containing every needle.
fn assert_one_line(stderr: &str, needles: &[&str]) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("webserver: error: "), "{stderr}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{needle:?} missing from:\n{stderr}"
        );
    }
}

/// Asserts clap's refusal: its first line names the option and says what it accepts (the rest is
/// clap's "For more information, try '--help'").
fn assert_clap_refusal(stderr: &str, needles: &[&str]) {
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: invalid value "), "{stderr}");
    for needle in needles {
        assert!(first.contains(needle), "{needle:?} missing from:\n{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Precedence
// ---------------------------------------------------------------------------------------------

#[test]
fn the_environment_sets_an_option() {
    let out = print_config(printed().env("WEBSERVER_WORKERS", "3"));
    assert_eq!(
        setting(&out, "workers"),
        ("3".into(), "env WEBSERVER_WORKERS".into())
    );
}

#[test]
fn the_environment_binds_a_served_listener() {
    // The default would be 127.0.0.1:8888; the variable's port 0 gets a free one.
    let server = server(hello())
        .no_default_bind()
        .env("WEBSERVER_BIND", "127.0.0.1:0")
        .env("WEBSERVER_TIMEOUT", "off")
        .start();
    assert_ne!(server.port(), 8888);
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn a_flag_beats_the_environment() {
    let out = print_config(printed().env("WEBSERVER_WORKERS", "3").args(["-w", "2"]));
    assert_eq!(setting(&out, "workers"), ("2".into(), "flag".into()));
}

#[test]
fn the_environment_beats_the_file() {
    let file = config_file("workers = 4\n");
    let out = print_config(
        printed()
            .env("WEBSERVER_WORKERS", "3")
            .args(config_arg(&file)),
    );
    assert_eq!(
        setting(&out, "workers"),
        ("3".into(), "env WEBSERVER_WORKERS".into())
    );
}

#[test]
fn the_file_beats_the_default() {
    let file = config_file("workers = 4\nmax_body = 1024\n");
    let out = print_config(printed().args(config_arg(&file)));
    let from_file = format!("file {}", file.display());
    assert_eq!(setting(&out, "workers"), ("4".into(), from_file.clone()));
    // snake_case keys name the same option as the kebab-case flag.
    assert_eq!(setting(&out, "max-body"), ("1024".into(), from_file));
    assert_eq!(setting(&out, "keep-alive"), ("5".into(), "default".into()));
}

#[test]
fn print_config_says_what_no_bind_means() {
    let out = print_config(printed());
    let line = out
        .lines()
        .find(|l| l.starts_with("bind = "))
        .unwrap_or_else(|| panic!("no bind line:\n{out}"));
    assert!(line.starts_with("bind = []"), "{line}");
    assert!(
        line.ends_with("# default: 127.0.0.1:8888, or every socket systemd passed"),
        "{line}"
    );
}

#[test]
fn print_config_names_every_source_and_reads_back_as_a_config_file() {
    let file = config_file(
        "app = \"hello:app\"\napp-args = [\"--x\", \"y z\"]\nbind = \"127.0.0.1:9\"\n\
         timeout = \"off\"\nreload = true\nkeep-alive = 7\n",
    );
    let out = print_config(
        printed()
            .env("WEBSERVER_CONFIG", &file.display().to_string())
            .env("WEBSERVER_THREADS", "6")
            .args(["--max-body", "99"]),
    );
    let from_file = format!("file {}", file.display());
    assert!(
        out.contains(&format!(
            "# config file: {} (env WEBSERVER_CONFIG)",
            file.display()
        )),
        "{out}"
    );
    assert_eq!(setting(&out, "max-body"), ("99".into(), "flag".into()));
    assert_eq!(
        setting(&out, "threads"),
        ("6".into(), "env WEBSERVER_THREADS".into())
    );
    assert_eq!(
        setting(&out, "app"),
        ("\"hello:app\"".into(), from_file.clone())
    );
    assert_eq!(
        setting(&out, "app-args"),
        ("[\"--x\", \"y z\"]".into(), from_file.clone())
    );
    assert_eq!(
        setting(&out, "timeout"),
        ("\"off\"".into(), from_file.clone())
    );
    assert_eq!(setting(&out, "reload"), ("true".into(), from_file.clone()));
    assert_eq!(setting(&out, "keep-alive"), ("7".into(), from_file));
    assert_eq!(setting(&out, "workers"), ("1".into(), "default".into()));
    assert!(out.contains("# pid is not set"), "{out}");
    // Grouped as in --help.
    for heading in [
        "# Listeners",
        "# Processes",
        "# Timeouts",
        "# Limits",
        "# Reload",
    ] {
        assert!(
            out.lines().any(|l| l == heading),
            "{heading} missing:\n{out}"
        );
    }

    // The output is a config file giving the same values, now all from it.
    let again = config_file(&out);
    let reread = print_config(printed().args(config_arg(&again)));
    let from_again = format!("file {}", again.display());
    for key in [
        "app", "app-args", "bind", "threads", "max-body", "timeout", "reload",
    ] {
        let (value, source) = setting(&reread, key);
        assert_eq!(value, setting(&out, key).0, "{key}");
        assert_eq!(source, from_again, "{key}");
    }
}

#[test]
fn an_app_on_the_command_line_replaces_the_files_app_and_its_arguments() {
    let file = config_file("app = \"other:app\"\napp-args = [\"--from-file\"]\nworkers = 2\n");
    let out = print_config(
        server(hello())
            .no_default_bind()
            .args(config_arg(&file))
            .app_args(["--mine"]),
    );
    assert_eq!(
        setting(&out, "app"),
        (format!("\"{}\"", hello()), "command line".into())
    );
    assert_eq!(
        setting(&out, "app-args"),
        ("[\"--mine\"]".into(), "command line".into())
    );
    assert_eq!(
        setting(&out, "workers"),
        ("2".into(), format!("file {}", file.display()))
    );
}

// ---------------------------------------------------------------------------------------------
// The file's values are the ones applied
// ---------------------------------------------------------------------------------------------

#[test]
fn a_served_request_uses_the_files_app_arguments_bind_and_workers() {
    let lib = sample_app("c_timer");
    let file = config_file(&format!(
        "app = \"{}:app\"\napp-args = [\"250\", \"--x\"]\nbind = \"127.0.0.1:0\"\n\
         workers = 2\ntimeout = \"off\"\n",
        lib.display()
    ));
    let server = server("unused")
        .no_target()
        .no_default_bind()
        .args(config_arg(&file))
        .start();
    // The file's bind (port 0: a free port, not the default 8888), app and its arguments.
    assert_ne!(server.port(), 8888);
    assert_eq!(server.get("/args").text(), "250\n--x\n");
    assert_eq!(server.get("/wait").text(), "waited 250 ms\n");
    assert!(
        server
            .wait_for_log(Duration::from_secs(10), |l| l.contains("2 worker(s)"))
            .is_some(),
        "not 2 workers:\n{}",
        server.stderr()
    );
}

#[test]
fn the_files_max_body_is_enforced_and_a_flag_overrides_it() {
    let file = config_file("max-body = 4\n");
    let post = |server: &Server| {
        let mut conn = server.connect();
        conn.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
        conn.read_response().status
    };
    let limited = sample_server("echo").args(config_arg(&file)).start();
    assert_eq!(post(&limited), 413);
    let overridden = sample_server("echo")
        .args(config_arg(&file))
        .args(["--max-body", "100"])
        .start();
    assert_eq!(post(&overridden), 200);
}

// ---------------------------------------------------------------------------------------------
// Refusals: one line, exit 2
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unknown_key_is_refused_with_the_closest_known_one() {
    let file = config_file("wokers = 2\n");
    let stderr = refused(server(hello()).args(config_arg(&file)));
    assert_one_line(
        &stderr,
        &[
            &file.display().to_string(),
            "unknown key 'wokers'",
            "did you mean 'workers'",
        ],
    );
}

#[test]
fn a_wrong_type_is_refused_with_what_the_key_expects() {
    for (toml, expected) in [
        (
            "workers = true\n",
            "key 'workers': expected N, not a boolean",
        ),
        (
            "workers = \"four\"\n",
            "key 'workers': invalid value 'four'",
        ),
        (
            "reload = \"yes\"\n",
            "key 'reload': expected true or false, not a string",
        ),
        (
            "pid = [\"a.pid\", \"b.pid\"]\n",
            "key 'pid': expected one FILE, not a list",
        ),
        (
            "bind = [\"127.0.0.1:0\", true]\n",
            "key 'bind': expected a list of ADDR[,OPTION...], but one item is a boolean",
        ),
        ("workers = 2.0\n", "key 'workers': invalid value '2.0'"),
        (
            "app = \"nocolon\"\n",
            "key 'app': invalid value 'nocolon' for '[LIB:SYMBOL]'",
        ),
        ("[server]\nworkers = 2\n", "unknown key 'server'"),
    ] {
        let file = config_file(toml);
        let stderr = refused(server(hello()).args(config_arg(&file)));
        assert_one_line(&stderr, &[&file.display().to_string(), expected]);
    }
}

#[test]
fn a_nonsense_value_in_the_file_is_refused_like_the_flag() {
    let file = config_file("timeout = 0\n");
    let stderr = refused(server(hello()).args(config_arg(&file)));
    assert_one_line(
        &stderr,
        &[
            &file.display().to_string(),
            "key 'timeout'",
            "write `off` for no limit",
        ],
    );
}

#[test]
fn a_broken_or_missing_file_is_refused_in_one_line() {
    let file = config_file("workers = 2\nbind = \n");
    let stderr = refused(server(hello()).args(config_arg(&file)));
    assert_one_line(
        &stderr,
        &[&format!("{}:2:", file.display()), "not valid TOML"],
    );

    let missing = fresh_dir("config").join("missing.toml");
    let stderr = refused(server(hello()).args(config_arg(&missing)));
    assert_one_line(
        &stderr,
        &["cannot read config file", &missing.display().to_string()],
    );
}

#[test]
fn nonsense_values_are_refused_with_their_range() {
    for (args, needles) in [
        (&["-w", "0"][..], &["'--workers <N>'", "from 1 to 1024"][..]),
        (&["--threads", "0"], &["'--threads <N>'", "from 1 to 4096"]),
        (
            &["--timeout", "0"],
            &["'--timeout <SECS|off>'", "write `off` for no limit"],
        ),
        (
            &["--keep-alive", "0"],
            &["'--keep-alive <SECS>'", "seconds from 1 to 86400"],
        ),
        (
            &["--header-timeout", "0"],
            &["'--header-timeout <SECS>'", "from 1"],
        ),
        (&["--io-timeout", "0"], &["'--io-timeout <SECS>'", "from 1"]),
        (
            &["--body-timeout", "0"],
            &["'--body-timeout <SECS>'", "from 1"],
        ),
        (
            &["--timeout", "1000000"],
            &["'--timeout <SECS|off>'", "to 86400"],
        ),
        (&["-w", "many"], &["'--workers <N>'", "a whole number"]),
    ] {
        let stderr = refused(server(hello()).args(args));
        assert_clap_refusal(&stderr, needles);
    }
    // The same parser refuses a variable.
    let stderr = refused(server(hello()).env("WEBSERVER_THREADS", "0"));
    assert_clap_refusal(&stderr, &["'--threads <N>'", "from 1 to 4096"]);
}

#[test]
fn zero_is_accepted_where_it_means_something() {
    let out = print_config(printed().args(["--graceful-timeout", "0", "--max-body", "0"]));
    assert_eq!(setting(&out, "graceful-timeout").0, "0");
    assert_eq!(setting(&out, "max-body").0, "0");
}

#[test]
fn timeout_off_serves_without_a_request_limit() {
    let server = sample_server("hello").args(["--timeout", "off"]).start();
    assert_eq!(server.get("/hello").status, 200);
}

// ---------------------------------------------------------------------------------------------
// --help
// ---------------------------------------------------------------------------------------------

#[test]
fn help_groups_the_options_and_names_every_source() {
    let exited = server(hello())
        .no_target()
        .no_default_bind()
        .args(["--help"])
        .run_to_exit();
    assert!(exited.status.success(), "{exited:?}");
    let help = exited.stdout;
    for heading in [
        "Listeners:",
        "Processes:",
        "Timeouts:",
        "Limits:",
        "Reload:",
    ] {
        assert!(
            help.lines().any(|l| l == heading),
            "{heading} missing:\n{help}"
        );
    }
    for needle in [
        "[env: WEBSERVER_WORKERS=]",
        "WEBSERVER_<OPTION>",
        "--config FILE",
        "--print-config",
        "RUST_LOG",
        "A flag beats the environment, which beats the file, which beats the default",
    ] {
        assert!(help.contains(needle), "{needle:?} missing:\n{help}");
    }
    // -b is listed under Listeners, --timeout under Timeouts.
    let section = |heading: &str| -> String {
        let heading = format!("{heading}:");
        help.lines()
            .skip_while(|l| *l != heading)
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(section("Listeners").contains("--bind"), "{help}");
    assert!(
        section("Timeouts").contains("--timeout <SECS|off>"),
        "{help}"
    );
}

// ---------------------------------------------------------------------------------------------
// Rules between options hold for the file's values too
// ---------------------------------------------------------------------------------------------

#[test]
fn the_files_values_obey_the_rules_between_options() {
    // --reload-path needs --reload: the file's alone is refused, naming the file...
    let file = config_file("reload-path = [\"src\"]\n");
    let stderr = refused(server(hello()).args(config_arg(&file)));
    assert_one_line(
        &stderr,
        &[&file.display().to_string(), "not provided", "--reload"],
    );
    // ...and the file's reload satisfies a --reload-path typed on the command line.
    let file = config_file("reload = true\n");
    let out = print_config(
        printed()
            .args(config_arg(&file))
            .args(["--reload-path", "src"]),
    );
    assert_eq!(
        setting(&out, "reload"),
        ("true".into(), format!("file {}", file.display()))
    );
    assert_eq!(
        setting(&out, "reload-path"),
        ("[\"src\"]".into(), "flag".into())
    );
}

#[test]
fn an_option_added_by_another_module_is_read_from_the_file_without_code_for_it() {
    // --stats (src/stats/) is known to the config file only through its clap definition.
    let file = config_file("stats = \"127.0.0.1:0\"\n");
    let out = print_config(printed().args(config_arg(&file)));
    assert_eq!(
        setting(&out, "stats"),
        ("\"127.0.0.1:0\"".into(), format!("file {}", file.display()))
    );
}

// ---------------------------------------------------------------------------------------------
// A hot swap re-reads the file
// ---------------------------------------------------------------------------------------------

/// HUP re-reads `--config`: the new generation enforces the file's new `max-body`; `workers`,
/// which needs a restart, is named in one log line and stays as started; a file that no longer
/// parses fails the next swap, and the running generation keeps serving with its settings.
#[test]
fn a_hot_swap_rereads_the_file_and_names_what_needs_a_restart() {
    let dir = fresh_dir("config-reread");
    let file = dir.join("ws.toml");
    let pid_file = dir.join("ws.pid");
    std::fs::write(&file, "max-body = 100\n").unwrap();
    let server = sample_server("echo")
        .args(config_arg(&file))
        .arg_pid(&pid_file)
        .start();
    wait_first_ready(&pid_file);
    let post = || {
        let mut conn = server.connect();
        conn.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
        conn.read_response().status
    };
    assert_eq!(post(), 200);

    std::fs::write(&file, "max-body = 4\nworkers = 3\n").unwrap();
    kill(master_pid(&pid_file), libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 2)
    });
    assert_eq!(post(), 413, "generation 2 enforces the file's new max-body");
    let line = server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("needs a restart"))
        .unwrap_or_else(|| panic!("no restart line:\n{}", server.stderr()));
    assert!(line.contains("--config: workers changed"), "{line}");
    // The status file can say ready before the stderr reader has the line that says so.
    let ready = server
        .wait_for_log(Duration::from_secs(5), |l| l.contains("generation 2 ready"))
        .unwrap_or_else(|| panic!("no ready line:\n{}", server.stderr()));
    assert!(
        ready.contains("generation 2 ready: 1 worker(s)"),
        "workers stays as started: {ready}"
    );

    std::fs::write(&file, "max-body = [\n").unwrap();
    kill(master_pid(&pid_file), libc::SIGHUP);
    let (_, _, why) = poll(SWAP_TIMEOUT, "generation 3 failed", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "failed" && *g == 3)
    });
    assert!(why.contains("--config no longer applies"), "{why}");
    assert!(!why.contains('\n'), "{why}");
    assert_eq!(post(), 413, "generation 2 keeps serving with its settings");
}

/// `GET /config` on the stats socket of a running server: what is in force, as `--print-config`
/// prints it. After a HUP re-read, the new generation's values (`max-body` from the edited file)
/// and the option that needs a restart as it runs (`workers`, marked kept); a swap that fails
/// leaves the running generation's description in place.
#[test]
fn the_stats_socket_shows_the_settings_in_force_across_hot_swaps() {
    let dir = fresh_dir("config-in-force");
    let file = dir.join("ws.toml");
    let pid_file = dir.join("ws.pid");
    let socket = dir.join("stats.sock");
    std::fs::write(&file, "max-body = 100\n").unwrap();
    let _server = sample_server("echo")
        .args(config_arg(&file))
        .arg_pid(&pid_file)
        .args([format!("--stats=unix:{}", socket.display())])
        .start();
    wait_first_ready(&pid_file);
    let in_force = || {
        let out = std::process::Command::new("curl")
            .args(["-sf", "--unix-socket"])
            .arg(&socket)
            .arg("http://stats/config")
            .output()
            .expect("curl");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let first = in_force();
    let from_file = format!("file {}", file.display());
    assert_eq!(
        setting(&first, "max-body"),
        ("100".into(), from_file.clone())
    );
    assert_eq!(setting(&first, "workers"), ("1".into(), "default".into()));
    assert!(
        first.contains(&format!("# config file: {}", file.display())),
        "{first}"
    );

    std::fs::write(&file, "max-body = 4\nworkers = 3\n").unwrap();
    kill(master_pid(&pid_file), libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 2)
    });
    let second = in_force();
    assert_eq!(
        setting(&second, "max-body"),
        ("4".into(), from_file.clone())
    );
    assert_eq!(
        setting(&second, "workers"),
        (
            "1".into(),
            "default; kept: the file's change needs a restart".into()
        ),
        "{second}"
    );

    std::fs::write(&file, "max-body = [\n").unwrap();
    kill(master_pid(&pid_file), libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 3 failed", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "failed" && *g == 3)
    });
    assert_eq!(in_force(), second, "generation 2's settings stay in force");
}
