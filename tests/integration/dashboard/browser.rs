//! Headless Chromium rendering a page to its DOM or a screenshot, and reading figures out of
//! the rendered markup.

use super::*;

// ---- the browser -----------------------------------------------------------------------------

/// Headless Chromium with a fresh profile (removed on drop).
pub struct Chromium {
    binary: PathBuf,
    profile: PathBuf,
}

impl Chromium {
    pub fn new() -> Chromium {
        let binary = find_chromium().unwrap_or_else(|| {
            panic!(
                "the dashboard tests need Chromium and found none: install it with \
                 `apt-get install -y chromium` (.ci/run does), or set CHROMIUM=/path/to/chromium"
            )
        });
        let profile =
            std::env::temp_dir().join(format!("reminder-chromium-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile).expect("a profile directory");
        Chromium { binary, profile }
    }

    pub async fn run(&self, extra: &[String], url: &str) -> std::process::Output {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--lang=en-US",
                // Virtual time runs only while no fetch is pending: the budget is page time
                // after the data arrived, not a wall-clock wait.
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .args(extra)
            .arg(url)
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("Chromium finished within 120 s")
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        assert!(
            output.status.success(),
            "Chromium failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The DOM after the page's scripts ran.
    pub async fn dom(&self, url: &str) -> String {
        let output = self
            .run(
                &["--window-size=1280,2000".into(), "--dump-dom".into()],
                url,
            )
            .await;
        String::from_utf8(output.stdout).expect("the DOM is UTF-8")
    }

    pub async fn screenshot(&self, url: &str, path: &Path, width: u32, height: u32) {
        let _ = std::fs::remove_file(path);
        self.run(
            &[
                format!("--window-size={width},{height}"),
                format!("--screenshot={}", path.display()),
            ],
            url,
        )
        .await;
        let png = std::fs::read(path).expect("Chromium wrote the screenshot");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
        assert!(
            png.len() > 20_000,
            "the screenshot is suspiciously small ({} bytes)",
            png.len()
        );
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

// ---- reading the DOM -------------------------------------------------------------------------

/// Every opening tag that contains `marker` (e.g. `class="top-row"`).
pub fn tags<'a>(dom: &'a str, marker: &str) -> Vec<&'a str> {
    dom.match_indices(marker)
        .filter_map(|(at, _)| {
            let start = dom[..=at].rfind('<')?;
            let end = at + dom[at..].find('>')?;
            // Inside a tag, not in text.
            (!dom[start..at].contains('>')).then_some(&dom[start..=end])
        })
        .collect()
}

pub fn tag<'a>(dom: &'a str, marker: &str) -> &'a str {
    let found = tags(dom, marker);
    assert_eq!(
        found.len(),
        1,
        "expected one tag with {marker}, found {found:?}"
    );
    found[0]
}

pub fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(
        tag[start..start + len]
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

/// The text right after the tag with `marker`, up to the next tag.
pub fn text_after(dom: &str, marker: &str) -> String {
    let t = tag(dom, marker);
    let at = dom.find(t).expect("the tag is in the DOM") + t.len();
    let end = dom[at..].find('<').map_or(dom.len(), |e| at + e);
    dom[at..end].trim().to_string()
}

/// The `<tr>` elements with `class`, each as its whole markup.
pub fn rows<'a>(dom: &'a str, class: &str) -> Vec<&'a str> {
    let marker = format!("<tr class=\"{class}\"");
    dom.match_indices(&marker)
        .map(|(at, _)| {
            let end = at + dom[at..].find("</tr>").expect("closed row") + 5;
            &dom[at..end]
        })
        .collect()
}

pub fn stat(dom: &str, name: &str) -> (String, String) {
    let marker = format!("data-stat=\"{name}\"");
    let value =
        attr(tag(dom, &marker), "data-value").unwrap_or_else(|| panic!("{name} has no value"));
    (value, text_after(dom, &marker))
}

pub fn stat_text(dom: &str, name: &str) -> String {
    text_after(dom, &format!("data-stat=\"{name}\""))
}
