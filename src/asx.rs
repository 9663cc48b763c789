//! The ASX's list of today's company announcements (`todayAnns.do`): fetch
//! the page and read every row of its one table.
//!
//! The page is classic server-rendered HTML (reference B1): a custom
//! `<announcement_data>` element wraps a table whose header cells read "ASX
//! Code", "Date", "Price sens." and "Headline"; rows come newest first. This
//! module finds the table by those headers, so it survives cosmetic changes,
//! and fails loudly on anything it cannot read: a scan must never mistake a
//! broken page for a quiet day. Before the first release of the morning the
//! page has no table at all; that one shape is reported as
//! [`PageStatus::NoneYet`] with an empty list.
//!
//! Deciding what counts as a candidate is left to the scan.

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, NaiveTime};
use chrono_tz::Tz;
use reqwest::Url;
use reqwest::blocking::Client;
use reqwest::header::{ACCEPT, USER_AGENT};
use scraper::{ElementRef, Html, Node, Selector};
use serde::Serialize;

use crate::calendar::EXCHANGE_TZ;

/// The User-Agent sent with every request: the site serves browsers, and
/// pollers with library defaults have met refusals.
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
                                      (KHTML, like Gecko) Chrome/131.0 Safari/537.36";

/// One row of the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Announcement {
    /// The issuer's ASX code, upper case: `BHP`, `14D`, `CBAPM`.
    pub code: String,
    /// Release time in Sydney (serialised as RFC 3339 with offset). The page
    /// gives minutes only, so seconds are zero.
    pub announced_at: DateTime<Tz>,
    /// Whether the ASX marked the announcement price sensitive.
    pub price_sensitive: bool,
    /// The headline, entities decoded and whitespace collapsed.
    pub headline: String,
    /// Pages in the PDF, when the row shows a count.
    pub pages: Option<u32>,
    /// Absolute link to the announcement (the ASX terms page, then the PDF).
    pub pdf_url: String,
    /// The ASX document id from the link, e.g. `03160412`.
    pub ids_id: String,
}

/// Whether the page had anything to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageStatus {
    /// The table was there; the list holds its rows (maybe none).
    Published,
    /// The page before the day's first release: no table yet, empty list.
    NoneYet,
}

/// What was read from one fetch of the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnnouncementsPage {
    /// The date in the page's heading ("published on 14 October 2026"),
    /// when it has one.
    pub date: Option<NaiveDate>,
    /// Whether announcements were published yet.
    pub status: PageStatus,
    /// The rows, newest first as the page lists them.
    pub announcements: Vec<Announcement>,
}

impl AnnouncementsPage {
    /// The price-sensitive announcements released on `date` (Sydney).
    pub fn price_sensitive_on(&self, date: NaiveDate) -> impl Iterator<Item = &Announcement> {
        self.announcements
            .iter()
            .filter(move |a| a.price_sensitive && a.announced_at.date_naive() == date)
    }
}

/// Fetches the announcements page at `url` with `client` and parses it.
///
/// Sends [`BROWSER_USER_AGENT`]. The client's timeout applies (a blocking
/// client's default is 30 s; never build one without). A network error,
/// timeout or non-2xx status is an error naming `url`, as is any page
/// [`parse_page`] rejects.
pub fn fetch(client: &Client, url: &str) -> Result<AnnouncementsPage> {
    log::debug!("fetching ASX announcements from {url}");
    let response = client
        .get(url)
        .header(USER_AGENT, BROWSER_USER_AGENT)
        .header(ACCEPT, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
        .send()
        .with_context(|| format!("failed to fetch ASX announcements from {url}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("failed to fetch ASX announcements from {url}: HTTP {status}");
    }
    let body = response
        .text()
        .with_context(|| format!("failed to read ASX announcements from {url}"))?;
    log::debug!("read {} bytes of ASX announcements", body.len());
    parse_page(&body, url)
}

/// Parses the HTML of the announcements page served at `page_url` (used to
/// make links absolute and to name the page in errors).
///
/// Returns [`PageStatus::NoneYet`] and no rows for the morning page: the
/// ASX title and heading, no table and no announcement links. Any other page
/// without the table, a table missing one of its four headers, or a row that
/// cannot be read fully is an error saying what was missing.
pub fn parse_page(html: &str, page_url: &str) -> Result<AnnouncementsPage> {
    let base = Url::parse(page_url)
        .with_context(|| format!("announcements URL {page_url} is not a valid URL"))?;
    let document = Html::parse_document(html);
    let parser = Parser::new()?;
    let date = parser.heading_date(&document);

    let Some(table) = parser.find_table(&document) else {
        if parser.is_morning_page(&document) {
            log::debug!("ASX announcements page has no table yet: nothing released today");
            return Ok(AnnouncementsPage {
                date,
                status: PageStatus::NoneYet,
                announcements: vec![],
            });
        }
        bail!(
            "ASX announcements page {page_url} has an unknown layout: no table with a \
             \"Headline\" header, and not the pre-release page (\"Today's announcements - ASX\" \
             with no announcement links)"
        );
    };
    let columns = parser
        .columns(table)
        .with_context(|| format!("ASX announcements page {page_url} has an unknown layout"))?;

    let mut announcements = Vec::new();
    for (index, row) in table.select(&parser.row).enumerate() {
        if row.select(&parser.header_cell).next().is_some() {
            continue;
        }
        let announcement = parser.row(row, &columns, date, &base).with_context(|| {
            format!(
                "failed to read row {} of ASX announcements page {page_url}",
                index
            )
        })?;
        announcements.push(announcement);
    }
    Ok(AnnouncementsPage {
        date,
        status: PageStatus::Published,
        announcements,
    })
}

/// Positions of the four columns, found from the header row.
struct Columns {
    code: usize,
    date: usize,
    price_sensitive: usize,
    headline: usize,
    count: usize,
}

/// The compiled selectors, built once per parse.
struct Parser {
    title: Selector,
    heading: Selector,
    table: Selector,
    row: Selector,
    header_cell: Selector,
    cell: Selector,
    time: Selector,
    sensitive_icon: Selector,
    link: Selector,
    page_count: Selector,
    any_ids_link: Selector,
}

impl Parser {
    fn new() -> Result<Self> {
        Ok(Parser {
            title: selector("title")?,
            heading: selector("h1")?,
            table: selector("table")?,
            row: selector("tr")?,
            header_cell: selector("th")?,
            cell: selector("td")?,
            time: selector("span.dates-time")?,
            sensitive_icon: selector("img.pricesens")?,
            link: selector("a[href]")?,
            page_count: selector("span.page")?,
            any_ids_link: selector("a[href*=\"idsId=\"]")?,
        })
    }

    /// The first table with a header cell reading "Headline". Tables inside
    /// `<announcement_data>` come first, but the wrapper is not required.
    fn find_table<'a>(&self, document: &'a Html) -> Option<ElementRef<'a>> {
        document.select(&self.table).find(|table| {
            table
                .select(&self.header_cell)
                .any(|th| collapse(th.text()).contains("Headline"))
        })
    }

    /// The pre-release page: the ASX's own title and heading, no links to
    /// announcements anywhere.
    fn is_morning_page(&self, document: &Html) -> bool {
        let title = document
            .select(&self.title)
            .next()
            .map(|t| collapse(t.text()))
            .unwrap_or_default();
        let heading = document
            .select(&self.heading)
            .next()
            .map(|h| collapse(h.text()))
            .unwrap_or_default();
        title.contains("announcements")
            && title.ends_with("ASX")
            && heading.starts_with("Company announcements published on")
            && document.select(&self.any_ids_link).next().is_none()
    }

    /// The date in "Company announcements published on 14 October 2026".
    fn heading_date(&self, document: &Html) -> Option<NaiveDate> {
        let heading = collapse(document.select(&self.heading).next()?.text());
        let words: Vec<&str> = heading.split(' ').collect();
        let tail = words.get(words.len().checked_sub(3)?..)?.join(" ");
        NaiveDate::parse_from_str(&tail, "%d %B %Y").ok()
    }

    fn columns(&self, table: ElementRef<'_>) -> Result<Columns> {
        let headers: Vec<String> = table
            .select(&self.header_cell)
            .map(|th| collapse(th.text()))
            .collect();
        let find = |name: &str| {
            headers
                .iter()
                .position(|h| h.starts_with(name))
                .ok_or_else(|| anyhow!("no \"{name}\" column header (found {headers:?})"))
        };
        Ok(Columns {
            code: find("ASX Code")?,
            date: find("Date")?,
            price_sensitive: find("Price sens")?,
            headline: find("Headline")?,
            count: headers.len(),
        })
    }

    fn row(
        &self,
        row: ElementRef<'_>,
        columns: &Columns,
        heading_date: Option<NaiveDate>,
        base: &Url,
    ) -> Result<Announcement> {
        let cells: Vec<ElementRef<'_>> = row.select(&self.cell).collect();
        if cells.len() != columns.count {
            bail!("expected {} cells, found {}", columns.count, cells.len());
        }

        let code = collapse(cells[columns.code].text());
        let valid_code = (1..=6).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !valid_code {
            bail!("ASX code {code:?} is not 1 to 6 upper-case letters and digits");
        }

        let announced_at = self
            .release_time(cells[columns.date], heading_date)
            .with_context(|| format!("bad release time for {code}"))?;
        let price_sensitive = cells[columns.price_sensitive]
            .select(&self.sensitive_icon)
            .next()
            .is_some();

        let cell = cells[columns.headline];
        let link = cell
            .select(&self.link)
            .next()
            .ok_or_else(|| anyhow!("no announcement link for {code}"))?;
        let headline = headline_text(link);
        if headline.is_empty() {
            bail!("empty headline for {code}");
        }
        let href = link.value().attr("href").unwrap_or_default();
        let pdf_url = base
            .join(href)
            .with_context(|| format!("bad link {href:?} for {code}"))?;
        let ids_id = pdf_url
            .query_pairs()
            .find(|(key, _)| key == "idsId")
            .map(|(_, value)| value.into_owned())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| anyhow!("link {href:?} for {code} has no numeric idsId"))?;
        let pages = match cell.select(&self.page_count).next() {
            Some(span) => Some(
                page_count(&collapse(span.text()))
                    .with_context(|| format!("bad page count for {code}"))?,
            ),
            None => None,
        };

        Ok(Announcement {
            code,
            announced_at,
            price_sensitive,
            headline,
            pages,
            pdf_url: pdf_url.into(),
            ids_id,
        })
    }

    /// The cell holds "14/10/2026", a line break, then "7:24 pm" in a
    /// `span.dates-time`. A cell without its own date falls back to the
    /// heading's date.
    fn release_time(
        &self,
        cell: ElementRef<'_>,
        heading_date: Option<NaiveDate>,
    ) -> Result<DateTime<Tz>> {
        let text = collapse(cell.text());
        let time_text = match cell.select(&self.time).next() {
            Some(span) => collapse(span.text()),
            None => text
                .split(' ')
                .skip_while(|w| !w.contains(':'))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let date = match text.split(' ').find(|w| w.contains('/')) {
            Some(word) => NaiveDate::parse_from_str(word, "%d/%m/%Y")
                .with_context(|| format!("date {word:?} is not DD/MM/YYYY"))?,
            None => {
                heading_date.ok_or_else(|| anyhow!("no date in {text:?} nor in the heading"))?
            }
        };
        let time = NaiveTime::parse_from_str(&time_text, "%I:%M %p")
            .with_context(|| format!("time {time_text:?} is not like \"7:24 pm\""))?;
        date.and_time(time)
            .and_local_timezone(EXCHANGE_TZ)
            .earliest()
            .ok_or_else(|| anyhow!("{date} {time} does not exist in Sydney time"))
    }
}

fn selector(css: &str) -> Result<Selector> {
    Selector::parse(css).map_err(|err| anyhow!("bad CSS selector {css:?}: {err}"))
}

/// Text pieces joined with single spaces; non-breaking spaces count as
/// whitespace, so a cell holding only `&nbsp;` collapses to "".
fn collapse<'a>(pieces: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for word in pieces.flat_map(|piece| piece.split(char::is_whitespace)) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The link's own text: everything but the page-count and file-size spans
/// that follow the headline inside the same `<a>`.
fn headline_text(link: ElementRef<'_>) -> String {
    let mut pieces = Vec::new();
    for child in link.children() {
        match child.value() {
            Node::Text(text) => pieces.push(&**text),
            Node::Element(element) if element.name() != "span" => {
                if let Some(inner) = ElementRef::wrap(child) {
                    pieces.extend(inner.text());
                }
            }
            _ => {}
        }
    }
    collapse(pieces.into_iter())
}

/// "1 page" or "12 pages" to the number.
fn page_count(text: &str) -> Result<u32> {
    let mut words = text.split(' ');
    let (Some(number), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        bail!("{text:?} is not like \"12 pages\"");
    };
    if unit != "page" && unit != "pages" {
        bail!("{text:?} is not like \"12 pages\"");
    }
    number
        .parse()
        .with_context(|| format!("{text:?} is not like \"12 pages\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::thread::JoinHandle;
    use std::time::Duration;

    const NORMAL: &str = include_str!("../tests/fixtures/asx/today_normal.html");
    const MORNING: &str = include_str!("../tests/fixtures/asx/today_empty_morning.html");
    const CHANGED: &str = include_str!("../tests/fixtures/asx/today_changed_layout.html");
    const URL: &str = "https://www.asx.com.au/asx/v2/statistics/todayAnns.do";

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn parses_a_normal_day() {
        let page = parse_page(NORMAL, URL).unwrap();
        assert_eq!(page.status, PageStatus::Published);
        assert_eq!(page.date, Some(date(2026, 10, 14)));
        let codes: Vec<&str> = page.announcements.iter().map(|a| a.code.as_str()).collect();
        assert_eq!(codes, ["14D", "CBAPM", "8IH", "14D", "BHP", "14D"]);

        let first = &page.announcements[0];
        assert_eq!(first.announced_at.to_rfc3339(), "2026-10-14T19:24:00+11:00");
        assert!(!first.price_sensitive);
        assert_eq!(first.headline, "Change of Director's Interest Notice");
        assert_eq!(first.pages, Some(1));
        assert_eq!(first.ids_id, "03160412");
        let expected_pdf = "https://www.asx.com.au/asx/v2/statistics/\
                            displayAnnouncement.do?display=pdf&idsId=03160412";
        assert_eq!(first.pdf_url, expected_pdf);

        let raising = &page.announcements[3];
        assert!(raising.price_sensitive);
        assert_eq!(
            raising.headline,
            "Binding Offtake Agreement & Capital Raising"
        );
        assert_eq!(raising.pages, Some(12));
        assert_eq!(
            raising.announced_at.to_rfc3339(),
            "2026-10-14T09:41:00+11:00"
        );
        assert_eq!(
            page.announcements[2].announced_at.to_rfc3339(),
            "2026-10-14T12:00:00+11:00"
        );
        assert_eq!(
            page.announcements[1].headline,
            "Distribution Rate & Payment Date"
        );
        assert_eq!(
            page.announcements[5].headline,
            "Appendix 4G & Corporate Governance Statement"
        );

        let sensitive: Vec<&str> = page
            .price_sensitive_on(date(2026, 10, 14))
            .map(|a| a.code.as_str())
            .collect();
        assert_eq!(sensitive, ["8IH", "14D", "BHP"]);
        assert_eq!(page.price_sensitive_on(date(2026, 10, 15)).count(), 0);
        // Newest first, as the page lists them.
        assert!(
            page.announcements
                .windows(2)
                .all(|w| w[0].announced_at >= w[1].announced_at)
        );
    }

    #[test]
    fn serialises_for_json_output() {
        let page = parse_page(NORMAL, URL).unwrap();
        let json = serde_json::to_value(&page.announcements[4]).unwrap();
        assert_eq!(json["code"], "BHP");
        assert_eq!(json["announced_at"], "2026-10-14T08:30:00+11:00");
        assert_eq!(json["price_sensitive"], true);
        assert_eq!(json["headline"], "Quarterly Activities Report");
        assert_eq!(json["pages"], 27);
        assert!(
            json["pdf_url"]
                .as_str()
                .unwrap()
                .ends_with("idsId=03160031")
        );
        assert_eq!(serde_json::to_value(page.status).unwrap(), "published");
    }

    #[test]
    fn the_morning_page_is_empty_not_an_error() {
        let page = parse_page(MORNING, URL).unwrap();
        assert_eq!(page.status, PageStatus::NoneYet);
        assert_eq!(page.date, Some(date(2026, 10, 15)));
        assert!(page.announcements.is_empty());
        assert_eq!(serde_json::to_value(page.status).unwrap(), "none_yet");
    }

    #[test]
    fn a_changed_layout_is_an_error() {
        let err = format!("{:#}", parse_page(CHANGED, URL).unwrap_err());
        assert!(err.contains("unknown layout"), "{err}");
        assert!(err.contains("Headline"), "{err}");
        assert!(err.contains(URL), "{err}");
    }

    #[test]
    fn a_missing_header_or_cell_is_named() {
        let renamed = NORMAL.replace("<th>Price sens.</th>", "<th>Sensitive</th>");
        let err = format!("{:#}", parse_page(&renamed, URL).unwrap_err());
        assert!(err.contains("no \"Price sens\" column header"), "{err}");

        let no_time = NORMAL.replacen("<span class=\"dates-time\">7:24 pm</span>", "", 1);
        let err = format!("{:#}", parse_page(&no_time, URL).unwrap_err());
        assert!(
            err.contains("row 1") && err.contains("bad release time for 14D"),
            "{err}"
        );

        let no_link = NORMAL.replacen("idsId=03160398", "id=1", 1);
        let err = format!("{:#}", parse_page(&no_link, URL).unwrap_err());
        assert!(err.contains("has no numeric idsId"), "{err}");

        let dropped_cell = NORMAL.replacen("<td>BHP</td>", "", 1);
        let err = format!("{:#}", parse_page(&dropped_cell, URL).unwrap_err());
        assert!(err.contains("expected 4 cells, found 3"), "{err}");
    }

    #[test]
    fn a_pricesens_class_on_the_cell_alone_is_not_sensitive() {
        // announcements.do puts class="pricesens" on every row's cell; only
        // the icon marks a sensitive one.
        let page = NORMAL.replace("<td>&nbsp;</td>", "<td class=\"pricesens\">&nbsp;</td>");
        let parsed = parse_page(&page, URL).unwrap();
        let flags: Vec<bool> = parsed
            .announcements
            .iter()
            .map(|a| a.price_sensitive)
            .collect();
        assert_eq!(flags, [false, false, true, true, true, false]);
    }

    #[test]
    fn page_counts() {
        assert_eq!(page_count("1 page").unwrap(), 1);
        assert_eq!(page_count("12 pages").unwrap(), 12);
        assert!(page_count("12").is_err());
        assert!(page_count("many pages").is_err());
        assert!(page_count("2 pages long").is_err());
    }

    enum Reply {
        Page(&'static str),
        ServerError,
        Hangup,
    }

    /// Serves one connection on loopback and hands back the request head.
    fn serve_once(reply: Reply) -> (String, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/asx/v2/statistics/todayAnns.do",
            listener.local_addr().unwrap()
        );
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let (status, body) = match reply {
                Reply::Page(body) => ("200 OK", body),
                Reply::ServerError => ("500 Internal Server Error", "oops"),
                Reply::Hangup => return head,
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).unwrap();
            head
        });
        (url, handle)
    }

    #[test]
    fn fetches_over_http_with_a_browser_user_agent() {
        let (url, server) = serve_once(Reply::Page(NORMAL));
        let page = fetch(&Client::new(), &url).unwrap();
        let head = server.join().unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /asx/v2/statistics/todayanns.do "),
            "{head}"
        );
        let expected = format!(
            "user-agent: {}\r\n",
            BROWSER_USER_AGENT.to_ascii_lowercase()
        );
        assert!(head.contains(&expected), "{head}");
        assert_eq!(page.announcements.len(), 6);
        // Links resolve against the page actually fetched.
        assert!(
            page.announcements[0]
                .pdf_url
                .starts_with(&url[..url.len() - "todayAnns.do".len()])
        );
    }

    #[test]
    fn an_http_error_names_the_url() {
        let (url, server) = serve_once(Reply::ServerError);
        let err = format!("{:#}", fetch(&Client::new(), &url).unwrap_err());
        server.join().unwrap();
        assert!(err.contains(&url) && err.contains("HTTP 500"), "{err}");
    }

    #[test]
    fn a_dropped_connection_names_the_url() {
        let (url, server) = serve_once(Reply::Hangup);
        let err = format!("{:#}", fetch(&Client::new(), &url).unwrap_err());
        server.join().unwrap();
        assert!(
            err.contains("failed to fetch ASX announcements from") && err.contains(&url),
            "{err}"
        );
    }

    #[test]
    fn a_timeout_names_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/todayAnns.do", listener.local_addr().unwrap());
        // The listener accepts into its backlog and never answers.
        let client = Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let err = format!("{:#}", fetch(&client, &url).unwrap_err());
        assert!(
            err.contains(&url) && err.to_lowercase().contains("timed out"),
            "{err}"
        );
        drop(listener);
    }
}
