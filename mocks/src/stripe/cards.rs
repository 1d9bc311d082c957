//! Stripe's test cards: the one table that decides what confirming a payment
//! with each test payment method (`pm_card_visa`, ...) or raw test number
//! (`4000002760003184`) does.
//!
//! Why one table: the outcomes are documented facts about Stripe's test mode
//! (which decline code, which error code, whether 3-D Secure is required), and
//! the mock's behaviour and the table in `mocks/README.md` must say the same
//! thing. Everything that decides an outcome reads [`TEST_CARDS`]; the README
//! table is written from it and a unit test checks it stays in step.

/// What the issuer does with a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The payment succeeds.
    Succeeds,
    /// The payment is declined.
    Declines(Decline),
    /// The card needs 3-D Secure; after the customer authenticates, `then`
    /// happens (`None`: the payment succeeds).
    Authenticates {
        flow: Authentication,
        then: Option<Decline>,
    },
}

/// Which 3-D Secure flow Stripe.js would run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Authentication {
    /// 3-D Secure 2 (`stripe_3ds2_fingerprint`).
    ThreeDs2,
    /// 3-D Secure 1 style redirect (`three_d_secure_redirect`).
    Redirect,
}

/// A card error as Stripe reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decline {
    /// `error.code`: `card_declined`, `expired_card`, ...
    pub(crate) code: &'static str,
    /// `error.decline_code`, when Stripe's testing table gives one.
    pub(crate) decline_code: Option<&'static str>,
    pub(crate) message: &'static str,
    /// `error.param`, for errors about one card field.
    pub(crate) param: Option<&'static str>,
}

/// One documented test card.
#[derive(Debug)]
pub(crate) struct TestCard {
    /// The test PaymentMethod (`None`: only the number exists).
    pub(crate) payment_method: Option<&'static str>,
    /// Older names Stripe still accepts for the same card.
    pub(crate) aliases: &'static [&'static str],
    pub(crate) number: &'static str,
    pub(crate) brand: &'static str,
    pub(crate) outcome: Outcome,
    /// Whether the card is refused already when its PaymentMethod is created
    /// (an invalid number), not when a payment is confirmed.
    pub(crate) refused_on_creation: bool,
}

const fn declined(decline_code: &'static str, message: &'static str) -> Decline {
    Decline {
        code: "card_declined",
        decline_code: Some(decline_code),
        message,
        param: None,
    }
}

const fn error(code: &'static str, message: &'static str, param: Option<&'static str>) -> Decline {
    Decline {
        code,
        decline_code: None,
        message,
        param,
    }
}

const fn card(
    payment_method: &'static str,
    aliases: &'static [&'static str],
    number: &'static str,
    brand: &'static str,
    outcome: Outcome,
) -> TestCard {
    TestCard {
        payment_method: Some(payment_method),
        aliases,
        number,
        brand,
        outcome,
        refused_on_creation: false,
    }
}

const GENERIC: Decline = declined("generic_decline", "Your card was declined.");
const INSUFFICIENT: Decline = declined("insufficient_funds", "Your card has insufficient funds.");

/// Stripe's documented test cards and what each does.
pub(crate) const TEST_CARDS: &[TestCard] = &[
    card("pm_card_visa", &[], "4242424242424242", "visa", Outcome::Succeeds),
    card("pm_card_visa_debit", &[], "4000056655665556", "visa", Outcome::Succeeds),
    card("pm_card_mastercard", &[], "5555555555554444", "mastercard", Outcome::Succeeds),
    card("pm_card_amex", &[], "378282246310005", "amex", Outcome::Succeeds),
    card("pm_card_discover", &[], "6011111111111117", "discover", Outcome::Succeeds),
    card("pm_card_visa_chargeDeclined", &["pm_card_chargeDeclined"], "4000000000000002", "visa",
        Outcome::Declines(GENERIC)),
    card("pm_card_visa_chargeDeclinedInsufficientFunds", &["pm_card_chargeDeclinedInsufficientFunds"],
        "4000000000009995", "visa", Outcome::Declines(INSUFFICIENT)),
    card("pm_card_visa_chargeDeclinedLostCard", &["pm_card_chargeDeclinedLostCard"], "4000000000009987", "visa",
        Outcome::Declines(declined("lost_card", "Your card was declined."))),
    card("pm_card_visa_chargeDeclinedStolenCard", &["pm_card_chargeDeclinedStolenCard"], "4000000000009979", "visa",
        Outcome::Declines(declined("stolen_card", "Your card was declined."))),
    card("pm_card_chargeDeclinedExpiredCard", &[], "4000000000000069", "visa",
        Outcome::Declines(error("expired_card", "Your card has expired.", Some("exp_month")))),
    card("pm_card_chargeDeclinedIncorrectCvc", &[], "4000000000000127", "visa",
        Outcome::Declines(error("incorrect_cvc", "Your card's security code is incorrect.", Some("cvc")))),
    card("pm_card_chargeDeclinedProcessingError", &[], "4000000000000119", "visa",
        Outcome::Declines(error("processing_error", "An error occurred while processing your card. Try again in a little bit.", None))),
    card("pm_card_visa_chargeDeclinedVelocityLimitExceeded", &[], "4000000000006975", "visa",
        Outcome::Declines(declined("card_velocity_exceeded", "Your card was declined for making repeated attempts too frequently or exceeding its amount limit."))),
    card("pm_card_chargeDeclinedFraudulent", &["pm_card_radarBlock"], "4100000000000019", "visa",
        Outcome::Declines(declined("fraudulent", "Your card was declined."))),
    TestCard {
        payment_method: None,
        aliases: &[],
        number: "4242424242424241",
        brand: "visa",
        outcome: Outcome::Declines(error("incorrect_number", "Your card number is incorrect.", Some("number"))),
        refused_on_creation: true,
    },
    card("pm_card_threeDSecure2Required", &[], "4000000000003220", "visa",
        Outcome::Authenticates { flow: Authentication::ThreeDs2, then: None }),
    card("pm_card_threeDSecureRequired", &[], "4000000000003063", "visa",
        Outcome::Authenticates { flow: Authentication::Redirect, then: None }),
    card("pm_card_threeDSecureRequiredChargeDeclined", &[], "4000008400001629", "visa",
        Outcome::Authenticates { flow: Authentication::Redirect, then: Some(GENERIC) }),
    card("pm_card_threeDSecureOptional", &[], "4000000000003055", "visa", Outcome::Succeeds),
    card("pm_card_authenticationRequired", &[], "4000002760003184", "visa",
        Outcome::Authenticates { flow: Authentication::ThreeDs2, then: None }),
    card("pm_card_authenticationRequiredOnSetup", &[], "4000002500003155", "visa",
        Outcome::Authenticates { flow: Authentication::ThreeDs2, then: None }),
    card("pm_card_authenticationRequiredChargeDeclinedInsufficientFunds", &[], "4000008260003178", "visa",
        Outcome::Authenticates { flow: Authentication::ThreeDs2, then: Some(INSUFFICIENT) }),
];

/// The card behind a test PaymentMethod id (`pm_card_visa`, or an alias).
pub(crate) fn by_payment_method(id: &str) -> Option<&'static TestCard> {
    TEST_CARDS
        .iter()
        .find(|c| c.payment_method == Some(id) || c.aliases.contains(&id))
}

/// The card with this number (spaces and dashes ignored).
pub(crate) fn by_number(number: &str) -> Option<&'static TestCard> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    TEST_CARDS.iter().find(|c| c.number == digits)
}

/// Whether `number` passes the Luhn check card numbers carry.
pub(crate) fn luhn_valid(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 12
        || number
            .chars()
            .any(|c| !(c.is_ascii_digit() || c == ' ' || c == '-'))
    {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 {
                    d - 9
                } else {
                    d
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The decline for a real (non-test) card number used in test mode.
pub(crate) const LIVE_CARD_IN_TEST_MODE: Decline = Decline {
    code: "card_declined",
    decline_code: Some("test_mode_live_card"),
    message: "Your card was declined. Your request was in test mode, but used a non test card. For a list of valid test cards, visit: https://stripe.com/docs/testing.",
    param: None,
};

/// The README's test-card table (markdown), written from [`TEST_CARDS`].
#[cfg(test)]
pub(crate) fn markdown_table() -> String {
    let mut out = String::from(
        "| payment method | number | on confirm | `code` | `decline_code` |\n|---|---|---|---|---|\n",
    );
    for c in TEST_CARDS {
        let pm = match c.payment_method {
            Some(pm) => std::iter::once(pm)
                .chain(c.aliases.iter().copied())
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", "),
            None => "—".into(),
        };
        let (what, decline) = match c.outcome {
            Outcome::Succeeds => ("succeeds".to_owned(), None),
            Outcome::Declines(d) if c.refused_on_creation => (
                "refused when the PaymentMethod is created".to_owned(),
                Some(d),
            ),
            Outcome::Declines(d) => ("declined".to_owned(), Some(d)),
            Outcome::Authenticates { then: None, .. } => (
                "`requires_action` (3-D Secure), then succeeds".to_owned(),
                None,
            ),
            Outcome::Authenticates { then: Some(d), .. } => (
                "`requires_action` (3-D Secure), then declined".to_owned(),
                Some(d),
            ),
        };
        let code = decline.map_or("—".to_owned(), |d| format!("`{}`", d.code));
        let decline_code = decline
            .and_then(|d| d.decline_code)
            .map_or("—".to_owned(), |d| format!("`{d}`"));
        out.push_str(&format!(
            "| {pm} | `{}` | {what} | {code} | {decline_code} |\n",
            c.number
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_is_unique_and_only_the_invalid_one_fails_luhn() {
        for (i, c) in TEST_CARDS.iter().enumerate() {
            assert_eq!(
                luhn_valid(c.number),
                !c.refused_on_creation,
                "{}: Luhn check",
                c.number
            );
            assert!(
                TEST_CARDS[..i].iter().all(|o| o.number != c.number),
                "{} appears twice",
                c.number
            );
        }
        assert!(!luhn_valid("4242 4242 4242 424x"));
    }

    #[test]
    fn lookups_find_names_aliases_and_numbers() {
        assert_eq!(
            by_payment_method("pm_card_chargeDeclined").map(|c| c.number),
            Some("4000000000000002")
        );
        assert_eq!(
            by_number("4000 0027 6000 3184").and_then(|c| c.payment_method),
            Some("pm_card_authenticationRequired")
        );
        assert!(by_payment_method("pm_card_nonsense").is_none());
    }

    #[test]
    fn the_readme_table_is_written_from_this_table() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "mocks/README.md's test-card table differs from TEST_CARDS; replace it with:\n{}",
            markdown_table()
        );
    }
}
