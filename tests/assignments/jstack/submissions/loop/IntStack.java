// size never returns when the stack is not empty: 3 + 0 + 5 + 1 + 1 of 12.
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
        while (!items.isEmpty()) { }
        return 0;
    }
}
