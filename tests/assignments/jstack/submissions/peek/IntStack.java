// size lists the compiled classes it can see, then fails: 3 + 0 + 0 + 1 + 1 of 12.
import java.io.File;
import java.util.ArrayList;
import java.util.Arrays;

public class IntStack {
    private final ArrayList<Integer> items = new ArrayList<>();

    public void push(int x) {
        items.add(x);
    }

    public int pop() {
        if (items.isEmpty()) throw new IllegalStateException("empty");
        return items.remove(items.size() - 1);
    }

    public int size() {
        String[] names = new File("classes").list();
        Arrays.sort(names);
        System.out.println("classes: " + String.join(" ", names));
        return -1;
    }
}
