package contest.solution;

import java.io.BufferedReader;
import java.io.InputStreamReader;

public class Packaged {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        in.readLine();
        long s = 0;
        for (String w : in.readLine().trim().split(" ")) s += Long.parseLong(w);
        System.out.println(s);
    }
}
