//! The loss curves of the levels run, as a PNG: a log-scale loss against the
//! iteration, one colour per level, with labelled axes. Written with a small
//! rasteriser and PNG encoder of its own (uncompressed deflate blocks), so
//! the demo needs no plotting or image dependency.

const W: usize = 800;
const H: usize = 500;
const LEFT: usize = 70;
const RIGHT: usize = 20;
const TOP: usize = 30;
const BOTTOM: usize = 50;

const COLOURS: [[u8; 3]; 5] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189]];

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Canvas {
        Canvas { px: vec![255; W * H * 3] }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            let i = (y as usize * W + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// A line two pixels wide.
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = ((x0 + (x1 - x0) * t).round() as i64, (y0 + (y1 - y0) * t).round() as i64);
            self.set(x, y, c);
            self.set(x, y + 1, c);
        }
    }

    /// Text in a 3×5 pixel font scaled by 2; unknown characters are blank.
    fn text(&mut self, x: usize, y: usize, s: &str, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.set((x + k * 8 + col * 2 + dx) as i64, (y + r * 2 + dy) as i64, c);
                        }
                    }
                }
            }
        }
    }
}

fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        'e' => [0, 7, 7, 4, 7],
        'l' => [6, 2, 2, 2, 7],
        'v' => [0, 5, 5, 5, 2],
        'i' => [2, 0, 6, 2, 7],
        't' => [2, 7, 2, 2, 3],
        'r' => [0, 6, 5, 4, 4],
        'a' => [0, 7, 1, 7, 7],
        'o' => [0, 7, 5, 5, 7],
        'n' => [0, 6, 5, 5, 5],
        's' => [0, 7, 6, 3, 7],
        'E' => [7, 4, 7, 4, 7],
        'L' => [4, 4, 4, 4, 7],
        'B' => [6, 5, 6, 5, 6],
        'O' => [7, 5, 5, 5, 7],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        'g' => [7, 5, 7, 1, 7],
        _ => [0; 5],
    }
}

/// Draws `curves` (level, losses) into a PNG file at `path`.
pub fn write_png(path: &str, curves: &[(u8, Vec<f64>)]) -> std::io::Result<()> {
    let mut c = Canvas::new();
    let black = [0, 0, 0];
    let grey = [200, 200, 200];
    let finite = curves.iter().flat_map(|(_, l)| l.iter()).filter(|v| v.is_finite() && **v > 0.0);
    let (lo, hi) = finite.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
    let (lo, hi) =
        if lo <= hi { (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0)) } else { (0.0, 1.0) };
    let n = curves.iter().map(|(_, l)| l.len()).max().unwrap_or(1).max(2);
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let px = |i: f64| LEFT as f64 + pw * i / (n - 1) as f64;
    let py = |v: f64| TOP as f64 + ph * (1.0 - (v.log10() - lo) / (hi - lo));
    // Grid and axis labels: powers of ten, and five iteration marks.
    for d in (lo as i64)..=(hi as i64) {
        let y = py(10f64.powi(d as i32));
        c.line((LEFT as f64, y), ((W - RIGHT) as f64, y), grey);
        c.text(8, (y as usize).saturating_sub(5), &format!("1e{d}"), black);
    }
    for k in 0..=5 {
        let i = (n - 1) * k / 5;
        let x = px(i as f64);
        c.line((x, TOP as f64), (x, (H - BOTTOM) as f64), grey);
        c.text((x as usize).saturating_sub(8), H - BOTTOM + 8, &i.to_string(), black);
    }
    c.line((LEFT as f64, TOP as f64), (LEFT as f64, (H - BOTTOM) as f64), black);
    c.line((LEFT as f64, (H - BOTTOM) as f64), ((W - RIGHT) as f64, (H - BOTTOM) as f64), black);
    c.text(W / 2 - 40, H - 20, "iteration", black);
    c.text(8, 4, "-ELBO", black);
    for (k, (level, losses)) in curves.iter().enumerate() {
        let colour = COLOURS[*level as usize % COLOURS.len()];
        let pts: Vec<(f64, f64)> = losses
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite() && **v > 0.0)
            .map(|(i, v)| (px(i as f64), py(*v)))
            .collect();
        for w in pts.windows(2) {
            c.line(w[0], w[1], colour);
        }
        let ly = TOP + 10 + 16 * k;
        c.line(((W - 150) as f64, ly as f64 + 4.0), ((W - 120) as f64, ly as f64 + 4.0), colour);
        c.text(W - 112, ly, &format!("level {level}"), black);
    }
    std::fs::write(path, encode(&c.px))
}

/// An RGB image as PNG bytes: one IDAT of stored (uncompressed) deflate blocks.
fn encode(rgb: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(H * (W * 3 + 1));
    for row in rgb.chunks(W * 3) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, block) in chunks.iter().enumerate() {
        z.push((i + 1 == chunks.len()) as u8);
        let len = block.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(W as u32).to_be_bytes());
    ihdr.extend_from_slice(&(H as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}
