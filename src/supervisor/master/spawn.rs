//! Starting one worker process: the command line that carries a generation's settings, its
//! listeners, library image, TLS material and statistics page to it.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use super::Master;
use crate::privilege::WorkerPrivilegeArgs;
use crate::stats::{Stats, WorkerStatsArgs};
use crate::supervisor::args::ServeArgs;
use crate::supervisor::artifact::{worker_library_path, Artifact};
use crate::supervisor::children::WorkerProcess;
use crate::supervisor::process::jitter;
use crate::tls::TlsMaterial;

impl Master {
    pub(super) fn spawn(
        &mut self,
        generation: u64,
        library: &Artifact,
        multiprocess: bool,
    ) -> io::Result<i32> {
        // The generation's settings, if a swap re-read --config for it.
        let settings = library.settings.clone();
        if let Some(config) = &library.config {
            self.configs.insert(generation, Arc::clone(config));
        }
        // Only the generations still there can be in force.
        let present: Vec<u64> = self
            .machine
            .generation_views()
            .iter()
            .map(|g| g.id)
            .collect();
        self.configs
            .retain(|id, _| *id == generation || present.contains(id));
        let generation_args = settings.as_deref().unwrap_or(&self.args);
        let tuning = &generation_args.tuning;
        let max_requests = match tuning.max_requests {
            0 => 0,
            n => n + jitter(tuning.max_requests_jitter),
        };
        let mut args: Vec<OsString> = vec![
            "--lib".into(),
            worker_library_path().into_os_string(),
            "--symbol".into(),
            self.symbol.clone().into(),
            "--generation".into(),
            generation.to_string().into(),
            "--library-hash".into(),
            library.hash.clone().into(),
        ];
        args.extend(tuning.to_args(max_requests).into_iter().map(Into::into));
        // The app's own arguments, one `--app-arg=WORD` each (the `=` keeps a WORD that starts
        // with `-` a value); every generation gets them, hot swaps included.
        for word in &generation_args.app_args {
            let mut arg = OsString::from("--app-arg=");
            arg.push(word);
            args.push(arg);
        }
        if multiprocess {
            args.push("--multiprocess".into());
        }
        args.extend(
            WorkerPrivilegeArgs::to_args(self.run_as.as_ref())
                .into_iter()
                .map(Into::into),
        );
        args.extend(self.args.privilege.sandbox.to_args(self.source.parent()));
        args.extend(
            self.args
                .privilege
                .limits
                .to_args()
                .into_iter()
                .map(Into::into),
        );
        let tls = library.tls.as_ref().map(TlsMaterial::image);
        if tls.is_some() {
            args.push("--tls".into());
        }
        // Statistics never stop a worker from starting: without a page it is just not counted.
        let page = self.stats.as_ref().and_then(|_| {
            Stats::new_page(generation)
                .map_err(|e| log::warn!("cannot make a statistics page ({e}); the next worker's requests are not counted"))
                .ok()
        });
        args.extend(
            WorkerStatsArgs::to_args(page.is_some())
                .into_iter()
                .map(Into::into),
        );
        if self.listeners.is_empty() {
            return Err(io::Error::other(
                "the listening sockets are closed: the server is stopping",
            ));
        }
        for (_, options) in &self.listeners {
            args.push(format!("--listener={options}").into());
        }
        let number = WorkerProcess::next_number(&self.workers);
        args.push(format!("--title={}", title(generation_args, number, generation)).into());
        let listeners: Vec<BorrowedFd<'_>> =
            self.listeners.iter().map(|(fd, _)| fd.as_fd()).collect();
        let mut worker = WorkerProcess::spawn(
            &self.exe,
            &args,
            &listeners,
            library.image(),
            tls,
            page.as_ref().map(|page| page.fd()),
            library.pin.fd(),
        )?;
        let pid = worker.pid;
        worker.number = number;
        self.workers.push(worker);
        if let (Some(stats), Some(page)) = (&mut self.stats, page) {
            stats.spawned(pid, number, generation, page);
        }
        Ok(pid)
    }
}

/// What `ps` shows for worker `number` of `generation` (gunicorn's process titles): the
/// app as the command line named it, its arguments included.
fn title(args: &ServeArgs, number: usize, generation: u64) -> String {
    let mut title = format!(
        "webserver: worker {number} [gen {generation}] {}",
        args.app.as_deref().unwrap_or_default()
    );
    for word in &args.app_args {
        title.push(' ');
        title.push_str(&word.to_string_lossy());
    }
    title
}
