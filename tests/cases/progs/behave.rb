mode, *args = STDIN.read.split
nums = args.map(&:to_i)
case mode
when "sum" then puts nums.sum
when "wrong" then puts nums.sum + 1
when "spin" then loop {}
when "raise" then raise "boom"
end
