//! Shell completions and the man page, generated from the clap definition ([`Cli`]),
//! so they never drift from the options the binary really takes. Both are rendered into memory
//! and printed by the caller, which decides what a failed write to stdout means.

use clap::CommandFactory;

use super::Cli;

/// The completion script for `shell`.
pub(crate) fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut public_command(), "webserver", &mut script);
    script
}

/// The man page (roff, section 1).
pub(crate) fn man_page() -> Vec<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .expect("writing into a Vec cannot fail");
    page
}

/// The command line without its hidden subcommands (the worker and probe modes): clap_complete
/// offers hidden subcommands (clap_mangen leaves them out by itself), and clap cannot remove a
/// subcommand, so the public one is rebuilt from the same arguments and visible subcommands.
fn public_command() -> clap::Command {
    let full = Cli::command();
    let mut public = clap::Command::new("webserver")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned())
        .args_conflicts_with_subcommands(true)
        .subcommand_negates_reqs(true);
    if let Some(about) = full.get_about() {
        public = public.about(about.clone());
    }
    public
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_offer_every_visible_subcommand_and_no_hidden_one() {
        let script = String::from_utf8(completions(clap_complete::Shell::Bash)).unwrap();
        for visible in Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
        {
            assert!(
                script.contains(visible.get_name()),
                "{}",
                visible.get_name()
            );
        }
        assert!(!script.contains("__worker") && !script.contains("__probe"));
    }
}
