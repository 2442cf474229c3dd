// Pop on an empty stack ends the JVM: 3 + 2 + 0 + 1 + 1 of 12.
import java.util.ArrayList;

public class IntStack {
    private final ArrayList<Integer> items = new ArrayList<>();

    public void push(int x) {
        items.add(x);
    }

    public int pop() {
        if (items.isEmpty()) System.exit(3);
        return items.remove(items.size() - 1);
    }

    public int size() {
        return items.size();
    }
}
