//! The page and its files, built into the module (no CDN, no build step). Only the names
//! listed here are served: any other path is a 404, whatever it contains.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const INDEX: &str = include_str!("page/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("page/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("page/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("page/favicon.svg"),
    },
];

pub fn get(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The page, with the console's base path (`/deviceuser/`, after `http.conf`'s prefix).
pub fn page(base: &str) -> String {
    let escaped: String = base
        .chars()
        .filter(|c| !matches!(c, '"' | '<' | '>' | '&' | '\''))
        .collect();
    INDEX.replace("{{BASE}}", &escaped)
}
