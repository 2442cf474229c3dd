use std::io::Read;

fn main() {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).unwrap();
    let w: Vec<&str> = s.split_whitespace().collect();
    let n = |i: usize| -> i64 { w[i].parse().unwrap() };
    match w[0] {
        "sum" => println!("{}", n(1) + n(2)),
        "wrong" => println!("{}", n(1) - n(2)),
        "spin" => {
            let mut x: u64 = 0;
            loop {
                unsafe { std::ptr::write_volatile(&mut x, std::ptr::read_volatile(&x) + 1) };
            }
        }
        "alloc" => {
            let v = vec![1u8; (n(1) as usize) << 20];
            println!("{}", unsafe { std::ptr::read_volatile(&v[5]) });
        }
        "panic" => panic!("boom"),
        _ => {}
    }
}
