// Wrong everywhere, with its own org.junit.Assert that asserts nothing: 0 of 12.
import java.util.ArrayList;

public class IntStack {
    private final ArrayList<Integer> items = new ArrayList<>();

    public void push(int x) {
        items.add(x);
    }

    public int pop() {
        
        return -1;
    }

    public int size() {
        return -1;
    }
}
