import java.util.Scanner;

public class Main {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        String mode = in.next();
        if (mode.equals("sum")) System.out.println(in.nextLong() + in.nextLong());
        else if (mode.equals("wrong")) System.out.println(in.nextLong() - in.nextLong());
        else if (mode.equals("spin")) { long x = 0; while (true) x++; }
        else if (mode.equals("throw")) throw new IllegalStateException("boom");
    }
}
