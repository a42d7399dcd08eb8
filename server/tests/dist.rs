//! `server/dist/`: the man page and the shell completions the Debian package
//! installs, generated from the clap definition. Nobody edits them by hand;
//! this test fails when a flag or a help text changed and they were not
//! regenerated. Regenerate them all with
//!
//! ```sh
//! UPDATE_DIST=1 cargo test -p server --test dist
//! ```

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use server::Config;

/// Where the generated files are checked in.
fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist")
}

/// The command line as the user sees it, with the package version alone:
/// the checked-in files then change with a flag, a help text or a release,
/// not with every commit (`--version` adds the commit).
fn command() -> clap::Command {
    Config::command().version(env!("CARGO_PKG_VERSION"))
}

/// ENVIRONMENT: each flag's variable (clap_mangen leaves them out), and
/// the log filter.
fn environment_section() -> String {
    let mut section = String::from(".SH ENVIRONMENT\n");
    for arg in command().get_arguments() {
        if let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) {
            let var = var.to_string_lossy().replace('-', "\\-");
            let long = long.replace('-', "\\-");
            section.push_str(&format!(".TP\n\\fB{var}\\fR\nAs \\fB\\-\\-{long}\\fR.\n"));
        }
    }
    section.push_str(
        ".TP\n\\fBRUST_LOG\\fR\nLog filter: \\fBerror\\fR, \\fBwarn\\fR, \\fBinfo\\fR (the default), \\fBdebug\\fR, \\fBtrace\\fR, or per module (\\fBserver=debug\\fR).\n",
    );
    section
}

/// Sections clap knows nothing about, between ENVIRONMENT and VERSION.
const MAN_EXTRA: &str = r#".SH FILES
.TP
\fI/etc/gameserver/gameserver.env\fR
Environment of \fBgameserver.service\fR: one \fBGAMESERVER_\fR\fIFLAG\fR=\fIvalue\fR per line, as listed under ENVIRONMENT, and \fBRUST_LOG\fR.
.TP
\fI/etc/gameserver/cluster.env\fR, \fI/etc/gameserver/node\-\fR\fIN\fR\fI.env\fR
Environment of \fBgameserver@\fR\fIN\fR\fB.service\fR, node \fIN\fR of a cluster: the settings every node on the host shares, then the node's own (ports, metrics address).
.SH EXAMPLES
.TP
\fBsystemctl enable \-\-now gameserver\fR
Start the packaged service now and at every boot; its log: \fBjournalctl \-u gameserver \-f\fR.
.TP
\fBgameserver \-\-host 127.0.0.1 \-\-metrics 127.0.0.1:9100\fR
Serve on loopback only, with Prometheus metrics at \fIhttp://127.0.0.1:9100/metrics\fR.
.TP
\fBgameserver \-\-record /var/lib/gameserver/session.rec\fR
Record every join, move and leave; then \fBgameserver replay /var/lib/gameserver/session.rec \-\-at 60 \-\-print\fR prints where everyone was a minute in.
.SH SEE ALSO
\fBsystemd.exec\fR(5), \fBjournalctl\fR(1), \fI/usr/share/doc/gameserver/README.md\fR
"#;

/// Every file of `dist/` with what it should hold now.
fn generated() -> Vec<(&'static str, Vec<u8>)> {
    let man = clap_mangen::Man::new(command());
    let mut page = Vec::new();
    man.render_title(&mut page).unwrap();
    man.render_name_section(&mut page).unwrap();
    man.render_synopsis_section(&mut page).unwrap();
    man.render_description_section(&mut page).unwrap();
    man.render_options_section(&mut page).unwrap();
    page.extend_from_slice(environment_section().as_bytes());
    page.extend_from_slice(MAN_EXTRA.as_bytes());
    man.render_version_section(&mut page).unwrap();

    let mut files = vec![("gameserver.1", page)];
    for (shell, file) in [
        (Shell::Bash, "completions/gameserver.bash"),
        (Shell::Zsh, "completions/_gameserver"),
        (Shell::Fish, "completions/gameserver.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command(), "gameserver", &mut script);
        files.push((file, script));
    }
    files
}

#[test]
fn man_page_and_completions_match_the_command_line() {
    let update = std::env::var_os("UPDATE_DIST").is_some();
    let mut stale = Vec::new();
    for (file, content) in generated() {
        let path = dist().join(file);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else if std::fs::read(&path).ok() != Some(content) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "server/dist/ is stale ({stale:?}); regenerate it with \
         `UPDATE_DIST=1 cargo test -p server --test dist` and commit the result"
    );
}

#[test]
fn man_page_names_the_binary_and_every_flag() {
    let (_, page) = generated().swap_remove(0);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(".TH gameserver 1"), "{page}");
    for arg in command().get_arguments() {
        if let Some(long) = arg.get_long() {
            let flag = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(page.contains(&flag), "{flag} missing from the man page");
        }
    }
}
