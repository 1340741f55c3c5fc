//! The reminder text: a template with `{customer_name}`, `{plate_number}`, `{vehicle}` and
//! `{due_date}` placeholders (checked at start-up), and due dates written the way the
//! recipient's locale writes them (`26 November 2026` in Indonesian).

use chrono::NaiveDate;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    CustomerName,
    PlateNumber,
    Vehicle,
    DueDate,
}

/// A parsed message template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplate {
    parts: Vec<Part>,
}

/// The values a template can use.
pub struct MessageVars<'a> {
    pub customer_name: &'a str,
    pub plate_number: &'a str,
    pub vehicle: Option<&'a str>,
    pub due_date: NaiveDate,
    pub locale: &'a str,
}

impl MessageTemplate {
    pub fn parse(template: &str) -> Result<MessageTemplate, String> {
        if template.trim().is_empty() {
            return Err("the message template is empty".into());
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed placeholder at {:?}", &rest[open..]))?;
            let part = match &after[..close] {
                "customer_name" => Part::CustomerName,
                "plate_number" => Part::PlateNumber,
                "vehicle" => Part::Vehicle,
                "due_date" => Part::DueDate,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}} (known: {{customer_name}} {{plate_number}} {{vehicle}} {{due_date}})"
                    ));
                }
            };
            parts.push(part);
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(MessageTemplate { parts })
    }

    pub fn render(&self, vars: &MessageVars<'_>) -> String {
        let mut out = String::with_capacity(160);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::CustomerName => out.push_str(vars.customer_name),
                Part::PlateNumber => out.push_str(vars.plate_number),
                Part::Vehicle => out.push_str(vars.vehicle.unwrap_or(vars.plate_number)),
                Part::DueDate => out.push_str(&format_date(vars.due_date, vars.locale)),
            }
        }
        out
    }
}

/// The date as `locale` writes it (`8 Desember 2026` for `id`, `8 December 2026` for `en`),
/// month names from the locale data chrono carries; `None` for a locale it does not know.
/// `id`, `id-ID` and `id_ID` are one locale; a bare language takes its own country's variant.
pub fn localized_date(date: NaiveDate, locale: &str) -> Option<String> {
    let tag = locale.trim().replace('-', "_");
    let language = tag.split('_').next().unwrap_or("").to_ascii_lowercase();
    let guesses = [
        tag.clone(),
        format!("{language}_{}", language.to_ascii_uppercase()),
        match language.as_str() {
            "en" => "en_GB".to_string(),
            "in" => "id_ID".to_string(),
            _ => String::new(),
        },
    ];
    let known = guesses
        .iter()
        .filter(|g| !g.is_empty())
        .find_map(|g| chrono::Locale::try_from(g.as_str()).ok())?;
    Some(date.format_localized("%-d %B %Y", known).to_string())
}

/// `localized_date`, or the ISO date for a locale chrono does not know.
pub fn format_date(date: NaiveDate, locale: &str) -> String {
    localized_date(date, locale).unwrap_or_else(|| date.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "Halo {customer_name}, kendaraan {plate_number} Anda dijadwalkan servis berkala pada {due_date}. Balas pesan ini untuk booking jadwal. Terima kasih.";

    #[test]
    fn the_default_template_renders_the_documented_text() {
        let t = MessageTemplate::parse(DEFAULT).unwrap();
        let text = t.render(&MessageVars {
            customer_name: "Budi",
            plate_number: "B 1234 XYZ",
            vehicle: None,
            due_date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
            locale: "id",
        });
        assert_eq!(
            text,
            "Halo Budi, kendaraan B 1234 XYZ Anda dijadwalkan servis berkala pada 26 November 2026. Balas pesan ini untuk booking jadwal. Terima kasih."
        );
    }

    #[test]
    fn dates_follow_the_locale() {
        let d = NaiveDate::from_ymd_opt(2026, 8, 5).unwrap();
        assert_eq!(format_date(d, "id"), "5 Agustus 2026");
        assert_eq!(format_date(d, "id_ID"), "5 Agustus 2026");
        assert_eq!(format_date(d, "en-GB"), "5 August 2026");
        assert_eq!(format_date(d, "xx"), "2026-08-05");
        let december = NaiveDate::from_ymd_opt(2026, 12, 8).unwrap();
        assert_eq!(format_date(december, "id"), "8 Desember 2026");
        assert_eq!(format_date(december, "en"), "8 December 2026");
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_refused() {
        assert!(
            MessageTemplate::parse("Hi {name}")
                .unwrap_err()
                .contains("{name}")
        );
        assert!(MessageTemplate::parse("Hi {customer_name").is_err());
        assert!(MessageTemplate::parse("  ").is_err());
    }
}
