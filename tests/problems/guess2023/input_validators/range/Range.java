// Input validator in Java (its class from its file's name): one integer in [1, 100].
import java.io.BufferedReader;
import java.io.InputStreamReader;

public class Range {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line = in.readLine();
        boolean valid = line != null && line.matches("[1-9][0-9]*") && in.readLine() == null;
        System.exit(valid && Integer.parseInt(line) <= 100 ? 42 : 43);
    }
}
