//! Headless Chromium, for the tests that show a real browser is served (WebSockets, HTTP/2).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::have_program;

/// Headless Chromium on `url`, killed on drop.
pub struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts headless Chromium on `url` with its profile in `profile`; a TLS listener's
/// self-signed certificate is accepted.
pub fn chromium(url: &str, profile: &Path) -> Browser {
    assert!(
        have_program("chromium"),
        "chromium is not installed: apt-get install -y chromium"
    );
    let child = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--ignore-certificate-errors",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    Browser(child)
}
