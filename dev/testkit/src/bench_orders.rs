//! The varied orders of bench/consumer/run (its default payload), byte for byte, for the examples that
//! measure what the consumer does with them: the same seeded draws as its Python generator
//! (`random.Random(7)`), through the same Mersenne Twister.

/// bench/consumer/run's RECORD_BYTES: line items are added while an order is shorter than this − 60.
pub const RECORD_BYTES: usize = 1024;
/// The seed of the bench's generator.
pub const SEED: u32 = 7;
const CURRENCIES: [&str; 5] = ["EUR", "USD", "GBP", "JPY", "CHF"];

/// The bench's first `count` varied orders (it makes 10,000), one JSON text each.
pub fn varied_orders(count: usize) -> Vec<Vec<u8>> {
    let mut rng = PythonRandom::new(SEED);
    (0..count).map(|_| varied_order(&mut rng).into_bytes()).collect()
}

/// The next varied order from `rng`, as the bench's `json.dumps(event, separators=(",", ":"))` writes it.
pub fn varied_order(rng: &mut PythonRandom) -> String {
    let order = rng.below(1_000_000_000);
    let customer = rng.below(1_000_000);
    let amount = (1 + rng.below(99_999), rng.below(100));
    let currency = CURRENCIES[rng.below(5) as usize];
    let time = (rng.below(24), rng.below(60), rng.below(60));
    let mut event = format!(
        r#"{{"order_id":"o-{order}","customer_id":"c-{customer}","amount":"{}.{:02}","currency":"{currency}","created_at":"2025-01-02T{:02}:{:02}:{:02}Z","line_items":["#,
        amount.0, amount.1, time.0, time.1, time.2
    );
    // The bench measures the whole order, with the `]}` that closes it, before adding each line item.
    let mut first = true;
    while event.len() + 2 < RECORD_BYTES - 60 {
        if !first {
            event.push(',');
        }
        first = false;
        let sku = rng.below(1_000_000);
        let quantity = 1 + rng.below(19);
        let price = (rng.below(1000), rng.below(100));
        event.push_str(&format!(
            r#"{{"sku":"sku-{sku:06}","quantity":{quantity},"unit_price":"{}.{:02}"}}"#,
            price.0, price.1
        ));
    }
    event.push_str("]}");
    event
}

/// CPython's `random.Random(seed)` for a small seed, as far as `randrange` below 2^32 goes: MT19937
/// seeded by `init_by_array([seed])`, and `_randbelow` drawing the bound's bit length until below it.
#[derive(Debug)]
pub struct PythonRandom {
    state: [u32; 624],
    next: usize,
}

impl PythonRandom {
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = 19_650_218;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        // init_by_array with a key of one word.
        let (mut i, n) = (1usize, 624usize);
        for _ in 0..n {
            let prev = state[i - 1];
            state[i] = (state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525)).wrapping_add(seed);
            i += 1;
            if i >= n {
                state[0] = state[n - 1];
                i = 1;
            }
        }
        for _ in 0..n - 1 {
            let prev = state[i - 1];
            state[i] = (state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= n {
                state[0] = state[n - 1];
                i = 1;
            }
        }
        state[0] = 0x8000_0000;
        Self { state, next: n }
    }

    /// `getrandbits(32)`.
    pub fn next_u32(&mut self) -> u32 {
        if self.next >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                let odd = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.state[i] = self.state[(i + 397) % 624] ^ (y >> 1) ^ odd;
            }
            self.next = 0;
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `randrange(n)` for 0 < n < 2^32.
    pub fn below(&mut self, n: u32) -> u32 {
        let bits = 32 - n.leading_zeros();
        loop {
            let r = self.next_u32() >> (32 - bits);
            if r < n {
                return r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_what_cpython_draws_for_seed_7() {
        // python3 -c 'import random; r = random.Random(7); print([r.randrange(10**9) for _ in range(3)])'
        let mut rng = PythonRandom::new(SEED);
        let draws: Vec<u32> = (0..3).map(|_| rng.below(1_000_000_000)).collect();
        assert_eq!(draws, [347_712_782, 161_973_069, 423_938_499]);
    }

    #[test]
    fn orders_are_json_padded_to_the_bench_size() {
        for order in varied_orders(50) {
            let text = String::from_utf8(order).expect("ASCII");
            // The last line item took the order from under RECORD_BYTES - 60 to at most ~55 bytes over it.
            assert!((RECORD_BYTES - 60..RECORD_BYTES).contains(&text.len()), "{text}");
            assert!(
                text.starts_with(r#"{"order_id":"o-"#) && text.ends_with("}]}"),
                "{text}"
            );
        }
    }
}
