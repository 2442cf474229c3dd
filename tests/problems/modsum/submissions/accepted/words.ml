(* Str, which the contest systems link: the numbers split with a regular expression. *)
let () =
  let _ = read_line () in
  let words = Str.split (Str.regexp " +") (read_line ()) in
  Printf.printf "%d\n" (List.fold_left (fun s w -> s + int_of_string w) 0 words)
