//! Hand-written answer templates for two unrelated "prompts" (a shop's support bot and a biology
//! tutor), varied by the index so no two answers are identical. Used by the end-to-end drift
//! tests; the quality benchmark uses real corpora instead (scripts/quality-data.sh).

const SUPPORT: &[&str] = &[
    "Your order #{n} has shipped and should arrive within {d} business days.",
    "We have issued a refund of ${n} to your original payment method; it can take {d} days to appear.",
    "I'm sorry about the delay with order #{n}. I've asked the warehouse to prioritise it today.",
    "You can reset your password from the login page; the link we email is valid for {d} hours.",
    "The jacket you ordered is back in stock in size {d}, and I've reserved one for you.",
    "Our support team is available by chat {d} hours a day, and we usually reply within {n} minutes.",
    "To return an item, print the prepaid label from your account and drop the parcel at any post office within {d} days.",
    "Your subscription renews on the {d}th; you can cancel any time before then from the billing page.",
    "I've applied a {d}% discount code to your account for the inconvenience with order #{n}.",
    "The courier tried to deliver parcel #{n} yesterday; you can book a new delivery slot online.",
];

const BIOLOGY: &[&str] = &[
    "Mitochondria produce ATP through oxidative phosphorylation, roughly {d} molecules per glucose.",
    "Photosynthesis in chloroplasts turns light energy into chemical energy stored in glucose.",
    "DNA replication is semi-conservative: each of the {d} new helices keeps one original strand.",
    "Enzymes lower the activation energy of reactions; most human enzymes work best near {n} degrees.",
    "Meiosis produces {d} genetically distinct haploid cells, which is why siblings differ.",
    "The Krebs cycle oxidises acetyl-CoA in the mitochondrial matrix and releases carbon dioxide.",
    "Ribosomes translate messenger RNA into proteins, reading the code {d} nucleotides at a time.",
    "Natural selection favours heritable traits that improve survival over {n} generations.",
    "The cell membrane is a phospholipid bilayer studded with proteins that control transport.",
    "Neurons pass signals across synapses using neurotransmitters such as dopamine and serotonin.",
];

fn fill(template: &str, i: usize) -> String {
    template.replace("{n}", &(1000 + (i * 7919) % 9000).to_string()).replace("{d}", &(2 + (i * 31) % 11).to_string())
}

pub fn support_answer(i: usize) -> String {
    fill(SUPPORT[(i * 7 + i / SUPPORT.len()) % SUPPORT.len()], i)
}

pub fn biology_answer(i: usize) -> String {
    fill(BIOLOGY[(i * 3 + i / BIOLOGY.len()) % BIOLOGY.len()], i)
}

/// Refusals in the forms chat models use, varied by the index like the answers above.
const REFUSALS: &[&str] = &[
    "I'm sorry, but I can't help with that request about order #{n}.",
    "I cannot provide that information. Please contact our billing team within {d} days.",
    "Sorry, I can't assist with changing another customer's order.",
    "I'm unable to share details about account #{n} for privacy reasons.",
    "I apologize, but I cannot process a refund of ${n} through this chat.",
    "As an AI language model, I can't make exceptions to the return policy.",
];

pub fn refusal(i: usize) -> String {
    fill(REFUSALS[(i * 5 + i / REFUSALS.len()) % REFUSALS.len()], i)
}
