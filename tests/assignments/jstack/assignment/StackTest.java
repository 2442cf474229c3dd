import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class StackTest {
    @Test
    public void pushThenPop() {
        IntStack s = new IntStack();
        s.push(1);
        s.push(2);
        assertEquals(2, s.pop());
        assertEquals(1, s.pop());
    }

    @Test
    public void size() {
        IntStack s = new IntStack();
        s.push(7);
        s.push(8);
        assertEquals(2, s.size());
    }
}
