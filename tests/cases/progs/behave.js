const words = require("fs").readFileSync(0, "utf8").split(/\s+/).filter(Boolean);
const mode = words[0];
const nums = words.slice(1).map(Number);
if (mode === "sum") console.log(nums[0] + nums[1]);
else if (mode === "wrong") console.log(nums[0] * nums[1]);
else if (mode === "spin") { for (;;) {} }
else if (mode === "alloc") { const b = Buffer.alloc(nums[0] << 20, 1); console.log(b[5]); }
else if (mode === "throw") throw new Error("boom");
else if (mode === "flood") { const s = "spam ".repeat(20) + "\n"; for (;;) process.stdout.write(s); }
