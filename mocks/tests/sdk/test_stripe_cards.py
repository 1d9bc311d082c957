"""The official `stripe` SDK against the Stripe mock's test cards: every
documented decline, 3-D Secure (second confirm and the authentication page),
manual capture, and raw test numbers through PaymentMethods."""

import urllib.error
import urllib.request

import stripe

from _mocks import env, step

BASE = env("MOCK_STRIPE_URL")
client = stripe.StripeClient("sk_test_123", base_addresses={"api": BASE})


def pay(payment_method, **extra):
    params = {"amount": 2000, "currency": "usd", "payment_method": payment_method, "confirm": True}
    params.update(extra)
    return client.v1.payment_intents.create(params=params)


# Stripe's testing docs: payment method -> (error code, decline code).
DECLINES = {
    "pm_card_visa_chargeDeclined": ("card_declined", "generic_decline"),
    "pm_card_chargeDeclined": ("card_declined", "generic_decline"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds"),
    "pm_card_visa_chargeDeclinedLostCard": ("card_declined", "lost_card"),
    "pm_card_visa_chargeDeclinedStolenCard": ("card_declined", "stolen_card"),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", None),
    "pm_card_chargeDeclinedIncorrectCvc": ("incorrect_cvc", None),
    "pm_card_chargeDeclinedProcessingError": ("processing_error", None),
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": ("card_declined", "card_velocity_exceeded"),
    "pm_card_chargeDeclinedFraudulent": ("card_declined", "fraudulent"),
}
for pm, (code, decline_code) in DECLINES.items():
    try:
        pay(pm)
        raise AssertionError(f"{pm} must be declined")
    except stripe.CardError as e:
        assert e.http_status == 402 and e.code == code, (pm, e)
        assert e.error.decline_code == decline_code, (pm, e.error)
        assert e.error.type == "card_error" and e.error.charge.startswith("ch_"), e.error
        intent = e.error.payment_intent
        assert intent.status == "requires_payment_method", (pm, intent)
        fetched = client.v1.payment_intents.retrieve(intent.id)
        assert fetched.last_payment_error.code == code and fetched.last_payment_error.to_dict().get("decline_code") == decline_code, fetched
        assert fetched.payment_method is None, fetched
assert pay("pm_card_visa").status == "succeeded"
step(f"{len(DECLINES)} decline cards give their own code and decline_code, the intent back in requires_payment_method")

# 3-D Secure 2: requires_action with use_stripe_sdk; confirming again completes authentication.
intent = pay("pm_card_threeDSecure2Required")
assert intent.status == "requires_action", intent
assert intent.next_action.type == "use_stripe_sdk", intent.next_action
assert intent.next_action.use_stripe_sdk["type"] == "stripe_3ds2_fingerprint", intent.next_action
done = client.v1.payment_intents.confirm(intent.id)
assert done.status == "succeeded" and done.next_action is None and done.amount_received == 2000, done
step("pm_card_threeDSecure2Required: requires_action (use_stripe_sdk), a second confirm succeeds")

# With manual capture the authenticated payment waits for capture.
intent = pay("pm_card_authenticationRequired", capture_method="manual")
assert intent.status == "requires_action", intent
held = client.v1.payment_intents.confirm(intent.id)
assert held.status == "requires_capture" and held.amount_capturable == 2000, held
captured = client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 1500})
assert captured.status == "succeeded" and captured.amount_received == 1500, captured
step("pm_card_authenticationRequired with manual capture: requires_action, requires_capture, captured")

# A card that authenticates and is then declined.
intent = pay("pm_card_threeDSecureRequiredChargeDeclined")
assert intent.status == "requires_action" and intent.next_action.use_stripe_sdk["type"] == "three_d_secure_redirect", intent
try:
    client.v1.payment_intents.confirm(intent.id)
    raise AssertionError("declined after authentication")
except stripe.CardError as e:
    assert e.code == "card_declined" and e.error.decline_code == "generic_decline", e
step("pm_card_threeDSecureRequiredChargeDeclined: declined after authentication")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def authenticate(url, result):
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(f"{url}?result={result}", timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 302, e
        return e.headers["location"]
    raise AssertionError("the authentication page must redirect to the return_url")


# With a return_url: redirect_to_url, and the page's two outcomes.
intent = pay("pm_card_threeDSecure2Required", return_url="https://shop.example/return")
assert intent.next_action.type == "redirect_to_url", intent.next_action
page = intent.next_action.redirect_to_url.url
assert intent.next_action.redirect_to_url.return_url == "https://shop.example/return"
assert page.startswith(BASE), page
assert authenticate(page, "complete") == "https://shop.example/return"
assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
intent = pay("pm_card_threeDSecure2Required", return_url="https://shop.example/return")
authenticate(intent.next_action.redirect_to_url.url, "fail")
failed = client.v1.payment_intents.retrieve(intent.id)
assert failed.status == "requires_payment_method", failed
assert failed.last_payment_error.code == "payment_intent_authentication_failure", failed.last_payment_error
step("redirect_to_url: the authentication page completes or fails the payment and redirects to return_url")

# Raw test numbers through PaymentMethods.
pm = client.v1.payment_methods.create(params={"type": "card", "card": {"number": "4000002760003184", "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
assert pm.id.startswith("pm_") and pm.card.last4 == "3184" and pm.card.brand == "visa", pm
assert pay(pm.id).status == "requires_action"
visa = client.v1.payment_methods.create(params={"type": "card", "card": {"number": "4242 4242 4242 4242", "exp_month": 1, "exp_year": 2031}})
assert pay(visa.id).status == "succeeded"
for number, code, decline_code in (("4242424242424241", "incorrect_number", None), ("4111111111111111", "card_declined", "test_mode_live_card")):
    try:
        client.v1.payment_methods.create(params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034}})
        raise AssertionError(f"{number} must be refused")
    except stripe.CardError as e:
        assert e.code == code and e.error.decline_code == decline_code, (number, e.error)
assert client.v1.payment_methods.retrieve("pm_card_visa").card.last4 == "4242"
try:
    pay("pm_card_doesNotExist")
    raise AssertionError("an unknown test card must be refused")
except stripe.InvalidRequestError as e:
    assert e.http_status == 404 and e.code == "resource_missing" and e.param == "payment_method", e
step("raw numbers: 3184 needs authentication, 4242 succeeds, invalid and live numbers refused; unknown pm_card_* is 404")
