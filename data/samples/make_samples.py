"""Writes support_tickets.csv: invented customer-support messages over six intents.

Run once (`python data/samples/make_samples.py`); the committed CSV is the artifact and
this script only documents how it was made. Deterministic: same seed, same file.

Each message is a core sentence of its intent, sometimes with a greeting, a follow-up
detail or a sign-off, and sometimes lower-cased or with a typo, as real tickets are. Some
cores borrow another intent's words ("charged", "refund", "log in") so a bag-of-words
baseline cannot separate every row; `cancel_subscription` is kept rare on purpose, and a
few rows are repeated exactly or with small case/punctuation changes, so the hygiene
checks in 02_prepare have something real to find.
"""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

SEED = 7
OUT = Path(__file__).with_name("support_tickets.csv")
BROKEN = Path(__file__).with_name("broken_train.jsonl")

CORES = {
    "billing": [
        "Why was I charged {amount} this month when my plan is {amount2}?",
        "My invoice for {month} shows a fee I don't recognise.",
        "I see two charges from you on my card statement for the same day.",
        "Can you send me a proper invoice with my company VAT number on it?",
        "The price went up without any notice, what happened?",
        "My payment keeps getting declined even though the card is valid.",
        "How do I change the credit card you bill every month?",
        "I was billed for the annual plan but I picked monthly.",
        "Where can I download receipts for last year, I need them for taxes",
        "You charged me sales tax but I'm tax exempt, I sent the certificate already.",
        "The discount code {code} wasn't applied to my last bill.",
        "Is there a way to pay by bank transfer instead of card?",
        "My bill says {amount} but the checkout page said {amount2}.",
        "Can I switch the billing date to the 1st of the month?",
        "There's a pending authorization of {amount} that never went away.",
        "Why am I being charged for 5 seats, we only have 3 users.",
        "The invoice is addressed to my old company name, please fix it.",
        "I got an email saying my payment failed but the money left my account.",
        "What is this {amount} charge labelled SVC FEE?",
        "Can you explain the proration on my last invoice after I upgraded?",
        "I need a copy of the invoice for order {order} for my accountant.",
        "Do you charge in euros or dollars? my bank added a conversion fee",
        "I upgraded mid-month and got charged the full price, is that right?",
        "My PayPal was charged but the order still says unpaid.",
        "Please add my billing email {email} so invoices go to finance.",
        "the late fee on my account is wrong, I paid on time",
        "How much will I be charged when the free trial ends?",
        "Our purchase order number needs to be on the invoice, can you reissue it?",
        "I was charged again after I thought I had refunded order {order}.",
        "Is the {amount} on my statement the yearly fee or something else?",
        "Can you split the payment for my order into two cards?",
        "Why is there a currency conversion charge on my bill?",
        "The total on my invoice doesn't match the sum of the line items.",
        "Charged {amount} for an add-on I never turned on.",
        "I want to update the billing address on file.",
        "Can I get one invoice per month instead of one per purchase?",
        "I think I'm paying for two plans at once, can you check?",
        "The amount taken from my account doesn't match the order total.",
        "Why did my card get charged before the order shipped?",
        "Is there a student discount I can apply to my current bill?",
        "We need net-30 payment terms for our company account.",
        "My bank flagged your charge as suspicious, is it legit?",
        "How do I see what I'll be billed next month?",
        "Could you remove the card ending 4421 from my account, I don't want it billed anymore.",
        "The coupon worked on the first month only, now I pay full price again.",
        "Our invoices stopped arriving in my inbox since {month}.",
    ],
    "refund": [
        "I returned order {order} two weeks ago and still haven't got my money back.",
        "Please refund me, the item arrived broken.",
        "How long does a refund take to show on my card?",
        "I want my money back for order {order}, it's not what was described.",
        "You approved my refund but the amount is {amount} short.",
        "Can I get a refund on the shipping fee since the package was late?",
        "The jacket doesn't fit, how do I return it for a refund?",
        "I was charged twice for order {order}, please refund the duplicate.",
        "Is it possible to get a refund to a different card, my old one expired?",
        "I never received order {order} so I'd like a full refund.",
        "The refund you promised on the phone hasn't arrived yet.",
        "Can I get store credit instead of a refund?",
        "Do I have to pay for the return label or is it free?",
        "I bought this by mistake an hour ago, can you reverse the payment?",
        "The product stopped working after 3 days, I want a refund not a replacement.",
        "My return was received according to tracking, where is my refund?",
        "You refunded {amount} but I paid {amount2}.",
        "What's your return policy for opened items?",
        "I'd like to return the gift I received, can the refund go to me?",
        "Half of my order was missing, please refund the missing items.",
        "The sale price dropped a day after I bought it, can you refund the difference?",
        "I cancelled order {order} before it shipped, when do I get my money?",
        "Refund status for order {order} please.",
        "The return window says 30 days, I'm on day 28, can I still send it back?",
        "I got the wrong color and want my money back rather than an exchange.",
        "My refund was sent to PayPal but I paid with a card.",
        "Can you refund the subscription fee for last month, I didn't use it at all?",
        "I received a damaged box and the item inside is cracked, money back please.",
        "Is there a restocking fee when I return the headphones?",
        "The return label you emailed doesn't work, how do I send this back?",
        "I'm still waiting on my refund, it's been over 10 business days",
        "Please process a partial refund, one of the two lamps was scratched.",
        "Why was my refund request denied?",
        "I want to return everything from order {order}.",
        "The blender leaks, I'd like to send it back and be reimbursed.",
        "Order {order} came two weeks late and I don't need it anymore, money back?",
        "You said the refund was issued on {day} but my bank has nothing.",
        "How do I return something I bought in your physical store?",
        "I was promised a refund for the late delivery fee, where is it?",
        "Can I get reimbursed for the return postage I paid myself?",
        "The size chart was wrong, I'm returning the shoes, please credit my card.",
        "I paid for gift wrap and it wasn't wrapped, I want that part back.",
        "I accidentally ordered the same thing twice, refund one please.",
        "The refund went through but only for the item, not the tax.",
    ],
    "shipping": [
        "Where is my order {order}? Tracking hasn't updated in {days} days.",
        "Can I change the delivery address on order {order}?",
        "The courier says delivered but nothing is at my door.",
        "How long does standard shipping take to {country}?",
        "Do you ship to {country}?",
        "My package is stuck in customs, what should I do?",
        "Can I upgrade to express shipping after placing the order?",
        "The tracking number you sent doesn't work on the carrier's site.",
        "My order was supposed to arrive {day} and it's still not here.",
        "Can the driver leave the parcel with my neighbour?",
        "Why is shipping so expensive for such a small item?",
        "I only received one box but the email said 2 packages.",
        "My order {order} says shipped but the label was created 5 days ago and nothing since.",
        "Can I pick up my order from the warehouse instead?",
        "The package was returned to sender, can you resend it?",
        "Is it possible to schedule the delivery for the weekend?",
        "I need this by Friday, will it make it if I order today?",
        "The parcel arrived soaking wet, is the item inside ok to use?",
        "my delivery went to my old address, how do I get it back",
        "How do I track an order if I checked out as a guest?",
        "Do you offer free shipping over a certain amount?",
        "The delivery window keeps getting pushed back, now it says {day}.",
        "Can you split my order so the in-stock items ship now?",
        "Which courier do you use for {country}?",
        "The estimated delivery date changed three times, what's going on?",
        "I moved, please update the shipping address for my next box.",
        "It says out for delivery since yesterday morning.",
        "Will I have to pay import duties when it arrives in {country}?",
        "Can I add an item to order {order} before it ships?",
        "Has order {order} left the warehouse yet?",
        "The delivery person never rang, I was home all day.",
        "Do you deliver to PO boxes?",
        "I got a notice that a signature is required, can you waive it?",
        "My order shows as delivered to a different city.",
        "Is my order lost? it's been {days} days",
        "The box I got has someone else's name and address on it.",
        "My parcel has been sitting at the depot since {day}.",
        "Can you ship to a hotel? I'm travelling next week.",
        "The carrier wants me to collect it from a post office 40km away.",
        "What time of day does the delivery usually come?",
        "Why does tracking say 'exception' for order {order}?",
        "I need the invoice printed inside the parcel for customs in {country}.",
        "Can I combine my two orders into one shipment?",
        "The parcel locker code I got doesn't open anything.",
        "Half my items came today, when does the rest arrive?",
    ],
    "account_access": [
        "I can't log in, it says my password is wrong but I just reset it.",
        "The password reset email never arrives.",
        "My account is locked after too many attempts, how long do I wait?",
        "I lost my phone and can't get the two-factor code.",
        "How do I change the email address on my account?",
        "Someone else logged into my account, I didn't make these changes.",
        "I signed up with Google and now it asks me for a password I never set.",
        "The verification link in the email says it has expired.",
        "I forgot which email I used to sign up.",
        "It keeps logging me out every few minutes.",
        "Can I merge my two accounts into one?",
        "My username is taken but it's my own old account.",
        "How do I turn off two-factor authentication?",
        "I'm getting 'account disabled' when I try to sign in.",
        "my login code goes to an old phone number I don't have anymore",
        "Can you unlock my account, my email is {email}",
        "I want to add a second admin to our team account.",
        "The reset link takes me to a blank page.",
        "I changed my password and now the app won't accept the new one.",
        "How do I delete my account and all my data?",
        "I got an alert about a sign-in from {country}, that wasn't me.",
        "Why do I have to verify my identity again every time I log in?",
        "My employee left and I need access to the account she created.",
        "The security questions I set up don't work anymore.",
        "I can't find where to change my password in settings.",
        "Login with Apple just spins forever.",
        "I can sign in on the website but not on my phone.",
        "Please remove my old email {email} from the account.",
        "Can't get into my account since the last update, says session expired.",
        "I need to recover an account I haven't used in two years.",
        "Someone changed my password and email, please help me get my account back.",
        "The captcha on the sign in page never accepts my answer.",
        "I never got the email to confirm my new account.",
        "How do I log out of all devices at once?",
        "The one-time code says invalid every time I type it in.",
        "I'm stuck in a loop between the login page and the verify page.",
        "How do I change my display name, it shows my full legal name.",
        "I think my account was hacked, there are orders I didn't place.",
        "Is there a way to sign in without a password, like a magic link?",
        "My work SSO login stopped working for our whole team.",
        "I need to transfer the account to my colleague's email.",
        "Reset password form says no account found for {email}, but I have one.",
        "I'm locked out and the support page asks me to log in first.",
        "Can I recover my account without access to my old email?",
    ],
    "technical_issue": [
        "The app crashes every time I open the settings page.",
        "Checkout gives me an error 500 when I click pay.",
        "Your website is really slow today, pages take forever to load.",
        "The export to CSV button does nothing.",
        "Notifications stopped working after the latest update.",
        "I get a blank white screen on {browser}.",
        "The search bar returns no results even for products I know exist.",
        "Images in the product gallery don't load.",
        "The sync between my phone and laptop isn't working.",
        "The app freezes when I upload a file bigger than 10MB.",
        "I keep getting 'something went wrong, try again later'.",
        "Dark mode makes the text invisible on the dashboard.",
        "The integration with Slack stopped posting messages.",
        "Your API returns a timeout for every request since this morning.",
        "The page keeps reloading in a loop on {browser}.",
        "My saved items disappeared after the update.",
        "The PDF invoice download is corrupted and won't open.",
        "The mobile app drains my battery like crazy.",
        "Videos on the help center won't play.",
        "I can't scroll on the cart page on my tablet.",
        "After logging in the dashboard shows an error instead of my data.",
        "The app says there's no internet connection but everything else works.",
        "The date picker shows the wrong month.",
        "Buttons overlap on small screens and I can't tap confirm.",
        "The webhook you send has an invalid signature.",
        "Every time I add something to my cart it disappears.",
        "The order history page shows orders from another account!",
        "Push notifications come in twice.",
        "The app won't install on my {device}, it says incompatible.",
        "Pressing the pay button on order {order} just spins.",
        "The chat widget covers the checkout button.",
        "The translation is broken, half the site is in German.",
        "The report totals in the dashboard are different every time I refresh.",
        "I can't attach photos in the support form, the upload fails.",
        "The app shows prices in the wrong currency after the update.",
        "Audio in the tutorial videos is out of sync.",
        "Keyboard shortcuts stopped working in the editor.",
        "The map on the store locator won't load on {browser}.",
        "Copy and paste doesn't work in the address field.",
        "The progress bar gets stuck at 99% when saving.",
        "The app shows a certificate warning when I open it.",
        "The filters on the product list reset every time I go back.",
        "Printing the packing slip gives me a blank page.",
        "Screen reader can't read the menu buttons, accessibility is broken.",
    ],
    "cancel_subscription": [
        "Please cancel my subscription, I don't use it anymore.",
        "How do I stop my membership from renewing?",
        "I want to end my plan at the end of this billing period.",
        "cancel my account subscription please, effective today",
        "Can I pause my subscription instead of cancelling?",
        "I tried to cancel in the app but the button is greyed out.",
        "Stop the monthly box, we're moving abroad.",
        "Turn off auto-renew on my plan, and don't charge me again.",
        "We're switching providers, please close our team subscription.",
        "Cancel the trial before it converts to paid.",
        "Please end my subscription and confirm by email.",
        "I no longer want the yearly plan, how do I cancel it?",
    ],
}

DETAILS = {
    "billing": ["My account email is {email}.", "This is the second time this happened.",
                "I've attached a screenshot of the statement.", "Our finance team is asking."],
    "refund": ["I still have the original packaging.", "I've already sent the item back.",
               "The order number is {order}.", "I paid with Visa."],
    "shipping": ["I ordered on {day}.", "The tracking number ends in {digits}.",
                 "It's a birthday present so it's urgent.", "I chose express delivery."],
    "account_access": ["I've tried three different browsers.", "My email is {email}.",
                       "I need to get in today for work.", "I already cleared my cookies."],
    "technical_issue": ["I'm on {browser}.", "I'm using a {device}.", "Restarting didn't help.",
                        "It started after yesterday's update."],
    "cancel_subscription": ["My email is {email}.", "Thanks for everything so far.",
                            "It's just too expensive for us now."],
}
OPENERS = ["", "", "", "", "Hi, ", "Hello, ", "Hey there. ", "Good morning, ", "Hi team! ", "URGENT: "]
CLOSERS = ["", "", "", "", " Thanks.", " Thank you!", " Please help.", " Any update?", " thx", " Cheers"]

SLOTS = {
    "amount": ["$12.99", "$49", "$8.50", "$120", "$19.99", "€35", "$240", "$9.99"],
    "month": ["March", "April", "June", "September", "November", "January"],
    "code": ["SPRING20", "WELCOME10", "VIP15", "SAVE5"],
    "email": ["j.doe@example.com", "anna.k@example.org", "mike77@example.net", "li.wei@example.com"],
    "country": ["Canada", "Germany", "Australia", "Brazil", "Japan", "Ireland", "Mexico"],
    "day": ["Monday", "Tuesday", "last Wednesday", "Friday", "the 12th", "yesterday"],
    "days": ["4", "6", "9", "11", "12"],
    "browser": ["Safari", "Chrome", "Firefox", "Edge"],
    "device": ["iPhone 12", "Pixel 6", "Galaxy S21", "iPad", "Windows laptop"],
}


def fill(text: str, rng: random.Random) -> str:
    values = {name: rng.choice(choices) for name, choices in SLOTS.items()}
    values["amount2"] = rng.choice([a for a in SLOTS["amount"] if a != values["amount"]])
    values["order"] = f"#{rng.choice('ABCDK')}{rng.randint(10000, 99999)}"
    values["digits"] = str(rng.randint(1000, 9999))
    return text.format(**values)


def typo(text: str, rng: random.Random) -> str:
    """One human slip: two letters swapped or one dropped, inside a longer word."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 5 and w.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    w, j = words[i], rng.randint(1, len(words[i]) - 3)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if rng.random() < 0.5 else w[:j] + w[j + 1:]
    return " ".join(words)


def message(label: str, core: str, rng: random.Random, detail: bool = False) -> str:
    opener, text = rng.choice(OPENERS), fill(core, rng)
    if opener.endswith(", ") and not text.startswith("I "):
        text = text[0].lower() + text[1:]
    text = opener + text
    if detail or rng.random() < 0.3:
        text += " " + fill(rng.choice(DETAILS[label]), rng)
    text += rng.choice(CLOSERS)
    if rng.random() < 0.15:
        text = typo(text, rng)
    if rng.random() < 0.1:
        text = text.lower()
    return text


# Rows planted for the hygiene checks. The first five differ from their original only in
# case, punctuation or spacing (the same text once normalised); the last three by a word or
# a typo (near duplicates: most of their characters still match).
DUPLICATE_EDITS = [
    lambda t, rng: t.lower(),
    lambda t, rng: t.rstrip(".!?") + "!!",
    lambda t, rng: t.replace(",", "") + " ",
    lambda t, rng: t.upper(),
    lambda t, rng: "  " + t.replace(".", " ."),
    lambda t, rng: typo(t, rng),
    lambda t, rng: t + " Please help.",
    lambda t, rng: t.replace("I ", "I really ", 1) if "I " in t else "So, " + t,
]
N_EXACT_DUPLICATES = 3
# Under a fifth of the largest class, the share at which hygiene.imbalance_findings warns.
RARE = "cancel_subscription"


def build(seed: int = SEED) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, cores in CORES.items():
        for core in cores:
            rows.append((message(label, core, rng), label))
        # Some problems are reported twice by different people; the second report gets
        # its own details so it is a similar ticket, not a copy. The rare class stays rare.
        share = 0 if label == RARE else 0.5
        for core in rng.sample(cores, round(len(cores) * share)):
            rows.append((message(label, core, rng, detail=True), label))
    rng.shuffle(rows)
    # Only long enough rows: a typo in a six-word message changes most of it.
    common = [i for i, (text, label) in enumerate(rows) if label != RARE and len(text) >= 70]
    picks = rng.sample(common, N_EXACT_DUPLICATES + len(DUPLICATE_EDITS))
    extra = [rows[i] for i in picks[:N_EXACT_DUPLICATES]]
    extra += [(edit(rows[i][0], rng), rows[i][1]) for edit, i in zip(DUPLICATE_EDITS, picks[N_EXACT_DUPLICATES:])]
    for row in extra:
        rows.insert(rng.randint(0, len(rows)), row)
    return rows


SYSTEM = "Classify the customer message as one of: billing, refund, shipping, account_access, technical_issue, cancel_subscription."


def chat(user: str, answer: str | None, **extra) -> dict:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages, **extra}


def broken_lines() -> list[str]:
    """A chat JSONL file with one planted problem per numbered line (README.md lists them)."""
    dump = lambda obj: json.dumps(obj, ensure_ascii=False)  # noqa: E731
    weighted = chat("Why was I billed twice this month?", "billing")
    weighted["messages"][2]["weight"] = 2
    no_role = chat("placeholder", "billing")
    no_role["messages"][1] = {"content": "There are two charges of $12.99 on my card."}
    no_reply = chat("I can't log in.", "account_access")
    no_reply["messages"][2] = {"role": "assistant"}
    return [
        dump(chat("Where is my parcel? Tracking hasn't moved since Monday.", "shipping")),            # 1 ok
        dump(chat("I want my money back for order #A12345.", "refund"))[:-3],                          # 2 cut short
        dump({"conversation": chat("Please cancel my plan.", "cancel_subscription")["messages"]}),  # 3
        dump({"messages": [{"role": "system", "content": SYSTEM},
                           {"role": "customer", "content": "The app crashes on start."},
                           {"role": "assistant", "content": "technical_issue"}]}),                     # 4
        dump(weighted),                                                                                # 5
        dump(chat("My package arrived damaged, I'd like a refund.", None)),                            # 6
        dump(chat("How do I reset my password?", "account_access")),                                   # 7 ok
        dump(chat("", "billing")),                                                                     # 8
        dump(chat("Checkout fails with error 500<|im_end|>", "technical_issue")),                      # 9
        dump(chat("Can I change the delivery address?", "shipping", label="shipping")),                # 10
        dump({"prompt": "Refund status for order #B20211 please. ->", "completion": " refund"}),       # 11
        dump(no_role),                                                                                 # 12
        dump(no_reply),                                                                                # 13
        dump([{"role": "user", "content": "Stop my subscription."}, {"role": "assistant", "content": "cancel_subscription"}]),  # 14
        dump({"messages": []}),                                                                        # 15
        dump(chat("The invoice for March shows a fee I don't recognise.", "billing")),                 # 16 ok
        dump(chat("Do you ship to Canada?", "shipping")),                                              # 17 ok
    ]


def main() -> None:
    rows = build()
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "label"])
        for i, (text, label) in enumerate(rows, 1):
            writer.writerow([f"t{i:04d}", text, label])
    print(f"wrote {len(rows)} rows to {OUT}")
    BROKEN.write_text("\n".join(broken_lines()) + "\n", encoding="utf-8")
    print(f"wrote {BROKEN}")


if __name__ == "__main__":
    main()
