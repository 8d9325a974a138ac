//! The binary upgrade (USR2, issue 23) under a real systemd as PID 1, not a stand-in notify
//! socket (`tests/systemd.rs`): `systemctl kill -s USR2 --kill-who=main` under load moves the
//! service's `MainPID` to the new master, which the pid file and the stats socket name too;
//! the unit stays active with `NRestarts=0` and no request fails; a build that exits at start
//! changes nothing; `systemctl reload` and `systemctl stop` then reach the new master. (The stop
//! failed with the shipped unit's former `KillMode=mixed`: systemd does not wait for a main
//! process that was not its child when it said `MAINPID=`, so it SIGKILLed the service at once.)
//!
//! systemd runs in its own pid, mount, cgroup, UTS and IPC namespaces, fenced so that it cannot
//! touch the host (an earlier manual run let `systemd-tmpfiles` empty part of the host's `/tmp`):
//! - its cgroups are a fresh sub-cgroup of the test's (`name=systemd` and the unified
//!   hierarchy), mounted at the namespace's `/sys/fs/cgroup`, removed afterwards;
//! - every mount it inherits is read-only (`/proc/sys` included), and `/tmp`, `/var/tmp`,
//!   `/var/log`, `/var/lib/systemd`, `/run`, `/dev/shm` and `/etc/systemd/system` are private
//!   tmpfs mounted before systemd starts, with `mount --make-rprivate /` first;
//! - it boots `webserver-test.target`, which wants only the test's socket and service
//!   (`DefaultDependencies=no`), and everything of `sysinit.target` plus tmpfiles, udev,
//!   journald, logind, dbus and the usual targets is masked (symlinks to /dev/null);
//! - a marker file in the host's `/tmp` must be there, untouched, at the end, and invisible
//!   from inside.
//!
//! The namespace dies with its PID 1, which the guard kills by pid even when the test panics
//! (and `unshare --kill-child` kills if the test process dies first).
//!
//! The unit copies its `Type=`, `NotifyAccess=`, `ExecReload=`, `KillMode=` and `Restart=`
//! lines from `deploy/systemd/webserver.service`, behind a socket unit like
//! `deploy/systemd/webserver.socket`, so this tests what is shipped. It needs root, `unshare`,
//! `nsenter` and systemd (`.ci/run` installs it); without them it fails and says so.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::load::Load;
use common::swap::install;
use common::*;

const SYSTEMD: &str = "/lib/systemd/system";
const SYSTEMD_BIN: &str = "/lib/systemd/systemd";
/// How long systemd may take to boot and start the service, or a state to change.
const WAIT: Duration = Duration::from_secs(30);
const UNIT: &str = "webserver-test.service";

/// Run outside the namespaces: move into fresh cgroups (the new cgroup namespace is rooted
/// there), then start `pid1.sh` as PID 1 of new namespaces. `$1` is the test's directory.
const FENCE_SH: &str = r#"#!/bin/sh
set -eu
DIR=$1
: > "$DIR/cgroups"
TAG="webserver-systemd-test-$$"
path=$(sed -n 's/^[0-9]*:name=systemd://p' /proc/self/cgroup)
if [ -n "$path" ] && [ -d /sys/fs/cgroup/systemd ]; then
  cg="/sys/fs/cgroup/systemd${path%/}/$TAG"; mkdir "$cg"; echo "$cg" >> "$DIR/cgroups"
  echo $$ > "$cg/cgroup.procs"
fi
path=$(sed -n 's/^0:://p' /proc/self/cgroup)
if [ -d /sys/fs/cgroup/unified ]; then base=/sys/fs/cgroup/unified; else base=/sys/fs/cgroup; fi
cg="$base${path%/}/$TAG"; mkdir "$cg"; echo "$cg" >> "$DIR/cgroups"
echo $$ > "$cg/cgroup.procs"
exec unshare --pid --mount --cgroup --uts --ipc --fork --kill-child=SIGKILL --mount-proc \
  "$DIR/pid1.sh" "$DIR"
"#;

/// PID 1 of the new namespaces: fence the file system, then exec systemd.
const PID1_SH: &str = r#"#!/bin/sh
set -eu
DIR=$1
mount --make-rprivate /
# The cgroup hierarchies as this cgroup namespace sees them (rooted at the test's sub-cgroup).
if [ -d /sys/fs/cgroup/unified ]; then
  mount -t tmpfs -o mode=755 cgroups /sys/fs/cgroup
  mkdir /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
  mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
  mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
else
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
fi
# Every other mount read-only: systemd can write only to the tmpfs below.
awk '{print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
  case "$m" in /proc|/proc/*|/sys/fs/cgroup|/sys/fs/cgroup/*) continue ;; esac
  mount -o remount,bind,ro "$m" || { echo "cannot make $m read-only" >&2; exit 1; }
done
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
# The build's target directory (the server, the app, this test's units) must stay visible
# when the checkout lies under a directory covered below, as a clone in /tmp does: it is held
# read-only on /run/keep while the tmpfs go over, then bound back at its own path.
KEEP=$(cd "$DIR/../.." && pwd)
mount -t tmpfs -o mode=755 private /run
mkdir /run/keep
mount --bind "$KEEP" /run/keep
mount -o remount,bind,ro /run/keep
for d in /tmp /var/tmp /var/log /var/lib/systemd /dev/shm /etc/systemd/system; do
  mount -t tmpfs -o mode=755 private "$d"
done
chmod 1777 /tmp /var/tmp /dev/shm
if [ ! -d "$KEEP/debug" ]; then
  mkdir -p "$KEEP"
  mount --bind /run/keep "$KEEP"
fi
# systemd's own messages go to a file (the host's kernel log is no namespace's), readable from
# outside through /proc/PID/root; the console too.
touch /run/console /run/systemd.log
mount --bind /run/console /dev/console
mount --bind /run/systemd.log /dev/kmsg
cp "$DIR"/units/* /etc/systemd/system/
while read -r unit; do ln -s /dev/null "/etc/systemd/system/$unit"; done < "$DIR/masks"
exec env -i container=webserver-test /lib/systemd/systemd --system \
  --unit=webserver-test.target --log-target=kmsg --log-level=info
"#;

/// Units that must not start, or touch the file system or devices if they did.
const MASKED: &[&str] = &[
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup-dev-early.service",
    "systemd-tmpfiles-clean.service",
    "systemd-tmpfiles-clean.timer",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-journald.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
    "systemd-journald-audit.socket",
    "systemd-journal-flush.service",
    "systemd-logind.service",
    "systemd-remount-fs.service",
    "systemd-random-seed.service",
    "systemd-machine-id-commit.service",
    "systemd-update-utmp.service",
    "systemd-sysusers.service",
    "systemd-sysctl.service",
    "systemd-timesyncd.service",
    "ldconfig.service",
    "dbus.service",
    "dbus.socket",
    "sysinit.target",
    "basic.target",
    "sockets.target",
    "timers.target",
    "paths.target",
    "local-fs.target",
    "multi-user.target",
    "graphical.target",
    "default.target",
];

/// The `[Service]` settings taken from the shipped unit.
const SHIPPED_KEYS: &[&str] = &[
    "Type",
    "NotifyAccess",
    "ExecReload",
    "KillSignal",
    "KillMode",
    "Restart",
    "RestartSec",
];

/// systemd as PID 1 of its own namespaces; killed (and its cgroups removed) on drop.
struct FencedSystemd {
    dir: PathBuf,
    /// `unshare`, the parent of PID 1.
    unshare: Child,
    /// PID 1's pid as the host sees it.
    pid1: i32,
}

impl FencedSystemd {
    /// Boots systemd with the units in `dir/units` and returns once `unit` is active.
    fn boot(dir: &Path, unit: &str) -> FencedSystemd {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(
            root,
            "this test boots systemd in namespaces of its own and needs root: run it as root"
        );
        for program in [SYSTEMD_BIN, "/usr/bin/unshare", "/usr/bin/nsenter"] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: apt-get install systemd util-linux (.ci/run installs them)"
            );
        }
        write_script(&dir.join("fence.sh"), FENCE_SH);
        write_script(&dir.join("pid1.sh"), PID1_SH);
        let mut masks: Vec<String> = MASKED.iter().map(|u| (*u).to_owned()).collect();
        // Whatever this system's sysinit.target pulls in.
        if let Ok(wants) = std::fs::read_dir(format!("{SYSTEMD}/sysinit.target.wants")) {
            masks.extend(wants.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()));
        }
        masks.sort();
        masks.dedup();
        std::fs::write(dir.join("masks"), masks.join("\n") + "\n").unwrap();
        let mut command = Command::new(dir.join("fence.sh"));
        command
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("fence.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("fence.err")).unwrap());
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and only sets a flag of the
        // child; if this test's thread dies, unshare (and with it PID 1) is killed.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let unshare = command.spawn().expect("cannot start fence.sh");
        let mut systemd = FencedSystemd {
            dir: dir.to_owned(),
            pid1: 0,
            unshare,
        };
        let unshare_pid = systemd.unshare.id();
        systemd.pid1 = poll(WAIT, "systemd to run as PID 1 of the namespace", || {
            if let Ok(Some(status)) = systemd.unshare.try_wait() {
                panic!(
                    "the namespace ended at once ({status}): {}",
                    systemd.diagnostics()
                );
            }
            let pid = child_pids(unshare_pid).into_iter().next()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "systemd").then_some(pid as i32)
        });
        let booted = (0..WAIT.as_millis() / 100).find_map(|_| {
            let state = systemd.show(unit, "ActiveState");
            if state == "active" {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(100));
            None
        });
        assert!(
            booted.is_some(),
            "systemd did not start {unit} within {WAIT:?} (systemd cannot boot in this \
             environment?): {}",
            systemd.diagnostics()
        );
        systemd
    }

    /// `path` inside the namespace, as the host reaches it.
    fn inside(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.pid1))
    }

    /// `systemctl ARGS` inside the namespace.
    fn systemctl(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-m", "-p", "--", "systemctl"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run nsenter")
    }

    /// One property of `unit` (`systemctl show -p NAME --value`).
    fn show(&self, unit: &str, property: &str) -> String {
        let out = self.systemctl(&["show", "-p", property, "--value", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The service's main pid, as systemd (in its pid namespace) sees it.
    fn main_pid(&self) -> i32 {
        self.show(UNIT, "MainPID").parse().unwrap_or(0)
    }

    /// Does pid `pid` of the namespace exist?
    fn exists(&self, pid: i32) -> bool {
        self.inside(&format!("/proc/{pid}")).exists()
    }

    /// The service's log, systemd's console and `systemctl status`.
    fn diagnostics(&self) -> String {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let status = if self.pid1 > 0 {
            String::from_utf8_lossy(
                &self
                    .systemctl(&[
                        "status",
                        "--no-pager",
                        "--all",
                        UNIT,
                        "webserver-test.socket",
                    ])
                    .stdout,
            )
            .into_owned()
        } else {
            String::new()
        };
        format!(
            "\n---- fence.sh ----\n{}{}\n---- systemd ----\n{}{}\n---- service log ----\n{}\n---- status ----\n{status}",
            read(self.dir.join("fence.log")),
            read(self.dir.join("fence.err")),
            read(self.inside("/run/console")),
            read(self.inside("/run/systemd.log")),
            read(self.inside("/run/ws.log")),
        )
    }
}

impl Drop for FencedSystemd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        // PID 1 gone, the kernel kills everything else in its pid namespace.
        if self.pid1 > 0 {
            // SAFETY: kill(2) takes plain integers; pid1 is the grandchild this test started
            // (unshare, its parent, is not reaped yet, so the pid cannot have been reused).
            unsafe { libc::kill(self.pid1, libc::SIGKILL) };
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        // The cgroups systemd made under the test's, deepest first, once their processes are gone.
        let cgroups = std::fs::read_to_string(self.dir.join("cgroups")).unwrap_or_default();
        for top in cgroups.lines() {
            let mut dirs = Vec::new();
            collect_dirs(Path::new(top), &mut dirs);
            for dir in dirs.iter().rev() {
                let removed = (0..100).any(|_| {
                    std::fs::remove_dir(dir).is_ok() || {
                        std::thread::sleep(Duration::from_millis(50));
                        false
                    }
                });
                if !removed {
                    eprintln!("cannot remove cgroup {}", dir.display());
                }
            }
        }
    }
}

/// `dir` and every directory under it, parents before children.
fn collect_dirs(dir: &Path, into: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    into.push(dir.to_owned());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), into);
        }
    }
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `[Service]` lines of the shipped unit whose keys are in `SHIPPED_KEYS`, each of them.
fn shipped_service_lines() -> Vec<String> {
    let path = workspace_dir().join("deploy/systemd/webserver.service");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| {
            l.split_once('=')
                .is_some_and(|(key, _)| SHIPPED_KEYS.contains(&key.trim()))
        })
        .map(str::to_owned)
        .collect();
    for key in SHIPPED_KEYS {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{key}="))),
            "{} has no {key}= line",
            path.display()
        );
    }
    lines
}

/// A free port on 127.0.0.1 (for the socket unit).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /stats` on the stats socket: its `master_pid`.
fn stats_master_pid(socket: &Path) -> i64 {
    stats_json(socket)["master_pid"].as_i64().unwrap_or(-1)
}

/// A plain `GET /` on a new connection: its status.
fn get_status(addr: SocketAddr) -> Result<u16, String> {
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))
}

#[test]
fn under_systemd_usr2_moves_mainpid_to_the_new_master_and_the_unit_stays_active() {
    let dir = fresh_dir("systemd-real");
    let marker = PathBuf::from(format!(
        "/tmp/webserver-systemd-test-marker-{}",
        std::process::id()
    ));
    std::fs::write(&marker, "the fenced systemd must not touch this\n").unwrap();
    let _remove_marker = RemoveOnDrop(marker.clone());
    let exe = dir.join("webserver");
    std::fs::copy(webserver_exe(), &exe).unwrap();
    let live = dir.join("live.so");
    install(&sample_app("hello"), &live);
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let units = dir.join("units");
    std::fs::create_dir(&units).unwrap();
    std::fs::write(
        units.join("webserver-test.target"),
        "[Unit]\nDescription=webserver test: its socket and service only\n\
         Wants=webserver-test.socket webserver-test.service\n",
    )
    .unwrap();
    std::fs::write(
        units.join("webserver-test.socket"),
        format!("[Unit]\nDefaultDependencies=no\n[Socket]\nListenStream=127.0.0.1:{port}\n"),
    )
    .unwrap();
    std::fs::write(
        units.join(UNIT),
        format!(
            "[Unit]\nDefaultDependencies=no\nRequires=webserver-test.socket\n\
             After=webserver-test.socket\n[Service]\n{}\n\
             ExecStart={} --pid /run/ws/ws.pid --stats unix:/run/ws/stats.sock -w 2 {}:app\n\
             RuntimeDirectory=ws\nStandardOutput=append:/run/ws.log\nStandardError=append:/run/ws.log\n",
            shipped_service_lines().join("\n"),
            exe.display(),
            live.display()
        ),
    )
    .unwrap();

    let systemd = FencedSystemd::boot(&dir, UNIT);
    assert!(
        !systemd.inside(&marker.display().to_string()).exists(),
        "the host's /tmp is visible inside the namespace"
    );
    let pid_file = systemd.inside("/run/ws/ws.pid");
    let stats = systemd.inside("/run/ws/stats.sock");
    let old = systemd.main_pid();
    assert!(old > 1, "MainPID {old}");
    poll(WAIT, "the pid file", || {
        (std::fs::read_to_string(&pid_file).ok()?.trim() == old.to_string()).then_some(())
    });
    assert_eq!(get_status(addr), Ok(200));
    assert_eq!(stats_master_pid(&stats), i64::from(old));

    // A build that exits at start: nothing changes, and systemd sees nothing happen.
    std::fs::remove_file(&exe).unwrap();
    write_script(&exe, "#!/bin/sh\necho 'broken build' >&2\nexit 1\n");
    let log = systemd.inside("/run/ws.log");
    let usr2 = ["kill", "-s", "USR2", "--kill-who=main", UNIT];
    assert!(systemd.systemctl(&usr2).status.success());
    poll(WAIT, "the failed upgrade's line", || {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("binary upgrade failed: the new master (pid ")
            .then_some(())
    });
    assert_eq!(systemd.main_pid(), old);
    assert_eq!(systemd.show(UNIT, "ActiveState"), "active");
    assert_eq!(get_status(addr), Ok(200));

    // The build put back, USR2 under load.
    std::fs::remove_file(&exe).unwrap();
    std::fs::copy(webserver_exe(), &exe).unwrap();
    let load = Load::start(addr, 4);
    load.wait_progress(200);
    assert!(systemd.systemctl(&usr2).status.success());
    let new = poll(WAIT, "systemd's MainPID to move to the new master", || {
        Some(systemd.main_pid()).filter(|&pid| pid != old && pid > 1)
    });
    poll(WAIT, "the old master to exit", || {
        (!systemd.exists(old)).then_some(())
    });
    load.wait_progress(200);
    let (ok, failures, _) = load.finish();
    eprintln!(
        "upgrade under systemd: {ok} requests served, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{ok} served, failed: {failures:#?}");
    assert_eq!(systemd.show(UNIT, "ActiveState"), "active");
    assert_eq!(systemd.show(UNIT, "SubState"), "running");
    assert_eq!(systemd.show(UNIT, "NRestarts"), "0");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        new.to_string(),
        "the pid file names the new master"
    );
    assert_eq!(stats_master_pid(&stats), i64::from(new), "the stats socket");
    // One service: the only one running is the unit, with the new master as its main process.
    let running = systemd.systemctl(&[
        "list-units",
        "--type=service",
        "--state=running",
        "--plain",
        "--no-legend",
    ]);
    let running = String::from_utf8_lossy(&running.stdout).into_owned();
    let names: Vec<&str> = running
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, [UNIT], "{running}");

    // `systemctl reload` (HUP to $MAINPID) reaches the new master: generation 2.
    assert!(systemd.systemctl(&["reload", UNIT]).status.success());
    poll(WAIT, "generation 2 after systemctl reload", || {
        read_status(&pid_file).filter(|(state, generation, _)| state == "ready" && *generation == 2)
    });
    assert_eq!(get_status(addr), Ok(200));

    // `systemctl stop` stops the new master cleanly.
    assert!(systemd.systemctl(&["stop", UNIT]).status.success());
    assert_eq!(systemd.show(UNIT, "ActiveState"), "inactive");
    assert_eq!(systemd.show(UNIT, "Result"), "success");
    drop(systemd);
    assert_eq!(
        std::fs::read_to_string(&marker).ok().as_deref(),
        Some("the fenced systemd must not touch this\n"),
        "the host's /tmp marker"
    );
}

/// Removes a file when the test ends, passed or not.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
